"""The sampled minutes of every queue, as the gateway serves them (`GET /api/v1/history`).

The first fetch brings the whole window (15 minutes at 5 s by default), so the sparklines are
right from the first frame; later fetches bring only the samples taken since, appended here.
A gateway that restarted (it has taken fewer samples than we hold) or samples we missed
replace everything with what came.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.model import HistoryUpdate, QueueTrend

FIGURES = ("depth", "lag_messages", "lag_seconds", "in_rate", "out_rate")


@dataclass(frozen=True, slots=True)
class Trend:
    """One queue's series, oldest first; each ends at the gateway's newest sample."""

    start: int
    depth: tuple[float, ...]
    lag_messages: tuple[float, ...]
    lag_seconds: tuple[float, ...]
    in_rate: tuple[float, ...]
    out_rate: tuple[float, ...]

    @classmethod
    def of(cls, served: QueueTrend) -> Trend:
        return cls(served.start, *(getattr(served, f) for f in FIGURES))

    def extended(self, served: QueueTrend, keep: int) -> Trend:
        return Trend(self.start, *(
            (getattr(self, f) + getattr(served, f))[-keep:] for f in FIGURES))

    def __len__(self) -> int:
        return len(self.depth)


class History:
    """What the gateway sampled, kept for as long as it keeps it."""

    def __init__(self) -> None:
        self.taken = 0  # the number of the newest sample held; 0: none
        self.interval = 0.0  # seconds between samples; 0: the gateway serves no history
        self.samples = 0  # samples in the gateway's window
        self._trends: dict[str, Trend] = {}

    def merge(self, update: HistoryUpdate | None) -> None:
        if update is None:
            self.taken, self.interval, self.samples, self._trends = 0, 0.0, 0, {}
            return
        self.interval = update.interval
        self.samples = max(round(update.window / update.interval), 1)
        follows = update.taken - len(update.ages) == self.taken and update.taken >= self.taken
        trends: dict[str, Trend] = {}
        for name, served in update.queues.items():
            held = self._trends.get(name) if follows else None
            if held is not None and held.start == served.start:
                trends[name] = held.extended(served, self.samples)
            else:
                trends[name] = Trend.of(served)
        self._trends = trends
        self.taken = update.taken

    def trend(self, name: str) -> Trend | None:
        found = self._trends.get(name)
        return found if found else None

    def rates(self, name: str) -> tuple[float, float] | None:
        """The newest sample's messages in and out per second (averages over `interval`)."""
        found = self.trend(name)
        return (found.in_rate[-1], found.out_rate[-1]) if found else None
