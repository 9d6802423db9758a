"""The last minutes of every queue, sampled for `edgeq top` (`GET /api/v1/history`).

Every `admin.history_interval` seconds a sampler reads the queue engine's statistics (the same
`QueueEngine.stats()` that `GET /queues` serves: nothing is added to the message path) and
appends one sample per queue: its depth, the ready messages not yet delivered, the age of the
oldest unacknowledged message, and the messages enqueued and acknowledged per second since the
previous sample. The rates are true averages over that interval, counted from the totals, not
smoothed. A queue's series starts with its second sample (the first has no interval to count
over) and starts again when its totals go back (the queue was deleted and created again).

Memory is bounded: `admin.history // admin.history_interval` samples of five single-precision
figures (20 bytes a sample; 3.6 KB a queue at the defaults) for at most `admin.history_queues`
queues; queues beyond that many get no history until others go away.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.queues.model import QueueStats

FIGURES = ("depth", "lag_messages", "lag_seconds", "in_rate", "out_rate")
_WIDTH = len(FIGURES)


class _Series:
    """One queue's samples, oldest first, `FIGURES` interleaved; `start` is the number of the
    sample it began with (it stays when old samples fall out of the window)."""

    __slots__ = ("acked", "enqueued", "start", "values")

    def __init__(self, stats: QueueStats) -> None:
        self.values = array("f")
        self.start = 0
        self.enqueued = stats.enqueued
        self.acked = stats.acked

    def __len__(self) -> int:
        return len(self.values) // _WIDTH


class History:
    """Samples numbered from 1 (`taken`: the newest's number); every queue's series ends at the
    newest sample, so its i-th value from the end was taken at `times[-1 - i]`."""

    def __init__(self, interval: float, window: float, max_queues: int) -> None:
        self.interval = interval
        self.window = window
        self.samples = round(window / interval)
        self.max_queues = max_queues
        self.times: deque[float] = deque(maxlen=self.samples)
        self.taken = 0
        self._series: dict[str, _Series] = {}

    def sample(self, stats: Sequence[QueueStats], now: float) -> None:
        elapsed = now - self.times[-1] if self.times else 0.0
        self.taken += 1
        self.times.append(now)
        room = self.max_queues - sum(1 for s in stats if s.name in self._series)
        seen: dict[str, _Series] = {}
        for s in stats:
            series = self._series.get(s.name)
            if series is None:
                if room <= 0:
                    continue
                room -= 1
                series = _Series(s)  # nothing to count a rate over yet
            elif s.enqueued < series.enqueued or s.acked < series.acked:
                series = _Series(s)
            elif elapsed > 0:
                if not series.values:
                    series.start = self.taken
                series.values.extend((s.depth, s.lag_messages, s.lag_seconds,
                                      (s.enqueued - series.enqueued) / elapsed,
                                      (s.acked - series.acked) / elapsed))
                if len(series) > self.samples:
                    del series.values[:_WIDTH]
                series.enqueued, series.acked = s.enqueued, s.acked
            seen[s.name] = series
        self._series = seen

    def describe(self, now: float, since: int = 0, queue: str | None = None) -> dict[str, Any]:
        """The samples numbered above `since` (all of them when `since` is not below `taken`:
        the asker knew an earlier run), of every queue or of `queue` only. Each queue's
        `start` is the number of the sample its series began with: a client that holds a
        series with another `start` replaces it instead of appending."""
        if since >= self.taken:
            since = 0
        fresh = min(self.taken - since, len(self.times))
        queues: dict[str, Any] = {}
        for name, series in self._series.items():
            if queue is not None and name != queue:
                continue
            count = min(fresh, len(series))
            tail = series.values[len(series.values) - count * _WIDTH:] if count else array("f")
            shown: dict[str, Any] = {"start": series.start}
            for i, figure in enumerate(FIGURES):
                shown[figure] = [round(v, 3) for v in tail[i::_WIDTH]]
            queues[name] = shown
        times = list(self.times)[len(self.times) - fresh:]
        return {"interval": self.interval, "window": self.window, "taken": self.taken,
                "ages": [round(now - t, 3) for t in times], "queues": queues}


async def sample_every(history: History, stats: Callable[[], list[QueueStats]],
                       clock: Callable[[], float]) -> None:
    """The sampler: one sample now, then one every `history.interval` seconds."""
    while True:
        history.sample(stats(), clock())
        await asyncio.sleep(history.interval)
