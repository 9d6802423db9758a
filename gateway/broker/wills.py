"""Will messages: published on an abnormal disconnect, after the 5.0 will delay interval.

A will waits here until its time; a reconnect of the same client id in time cancels it
[MQTT-3.1.3-9], and a session that ends first publishes it at once.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from gateway.mqtt.packets import Will


@dataclass(order=True, slots=True)
class _Pending:
    due: float
    client_id: str = field(compare=False)
    will: Will = field(compare=False)
    username: str | None = field(compare=False, default=None)


class WillScheduler:
    def __init__(self) -> None:
        self._heap: list[_Pending] = []
        self._live: dict[str, _Pending] = {}

    def schedule(self, client_id: str, will: Will, due: float, username: str | None) -> None:
        pending = _Pending(due, client_id, will, username)
        self._live[client_id] = pending
        heapq.heappush(self._heap, pending)

    def cancel(self, client_id: str) -> None:
        self._live.pop(client_id, None)

    def take(self, client_id: str) -> _Pending | None:
        """Remove and return the will of `client_id` to publish it now (session ended)."""
        return self._live.pop(client_id, None)

    def due(self, now: float) -> list[_Pending]:
        out: list[_Pending] = []
        while self._heap and self._heap[0].due <= now:
            pending = heapq.heappop(self._heap)
            if self._live.get(pending.client_id) is pending:
                del self._live[pending.client_id]
                out.append(pending)
        return out

    def __len__(self) -> int:
        return len(self._live)
