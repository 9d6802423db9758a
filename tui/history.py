"""The recent depth and lag of every queue, one sample per refresh, for the sparklines."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from tui.model import QueueRow

SAMPLES = 120  # two minutes at one refresh per second


class History:
    """Bounded series per queue; queues that disappear are forgotten."""

    def __init__(self, samples: int = SAMPLES) -> None:
        self.samples = samples
        self._depth: dict[str, deque[float]] = {}
        self._lag: dict[str, deque[float]] = {}

    def record(self, queues: Iterable[QueueRow]) -> None:
        seen = set()
        for q in queues:
            seen.add(q.name)
            self._depth.setdefault(q.name, deque(maxlen=self.samples)).append(q.depth)
            self._lag.setdefault(q.name, deque(maxlen=self.samples)).append(q.lag_seconds)
        for gone in set(self._depth) - seen:
            del self._depth[gone]
            del self._lag[gone]

    def depth(self, name: str) -> list[float]:
        return list(self._depth.get(name, ()))

    def lag(self, name: str) -> list[float]:
        return list(self._lag.get(name, ()))
