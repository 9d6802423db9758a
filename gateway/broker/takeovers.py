"""Duplicate client ids: one id taken over again and again means two devices share it.

Two boards flashed with the same device id knock each other off the gateway in turn, each
reconnect taking the other's session over. Each takeover alone is ordinary (a client
reconnecting after a dead link), so this counts them per client id over a window and reports a
client id once it is taken over `THRESHOLD` times within `WINDOW` seconds, at most once per
window. Memory is bounded: only ids taken over within the window are kept.
"""

from __future__ import annotations

from collections import deque

WINDOW = 60.0
THRESHOLD = 3
MAX_TRACKED = 10_000


class Takeovers:
    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}
        self._reported: dict[str, float] = {}
        self.duplicates = 0  # client ids reported, for $SYS and metrics

    def taken_over(self, client_id: str, now: float) -> int:
        """Count one takeover of `client_id`; the number within the window when it is time to
        report it as a likely duplicate, else 0."""
        times = self._times.get(client_id)
        if times is None:
            if len(self._times) >= MAX_TRACKED:
                self.forget_before(now - WINDOW)
            times = self._times[client_id] = deque(maxlen=THRESHOLD * 4)
        times.append(now)
        while times and times[0] < now - WINDOW:
            times.popleft()
        last = self._reported.get(client_id)
        if len(times) < THRESHOLD or (last is not None and now - last < WINDOW):
            return 0
        self._reported[client_id] = now
        self.duplicates += 1
        return len(times)

    def forget_before(self, cutoff: float) -> None:
        """Drop ids not taken over since `cutoff` (called from the broker's tick)."""
        for client_id in [c for c, t in self._times.items() if not t or t[-1] < cutoff]:
            del self._times[client_id]
            self._reported.pop(client_id, None)
