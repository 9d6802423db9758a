"""What a bridge reports: one flat JSON-able record per bridge for the admin API
(`GET /api/v1/bridges`), `$SYS/broker/bridges` and `edgeq top`, and the per-field `$SYS` topics.

Outbox figures are the sums (lag: the maximum) over the bridge's outbox queues, taken from the
queue engine's own statistics, so they agree with `edgeq queue list`. Rates are messages/s
smoothed like the queues' (10 s time constant).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.queues.model import QueueStats

RATE_TIME_CONSTANT = 10.0

# `$SYS/broker/bridges/<name>/<topic>` <- record field; published every sys_interval
SYS_FIELDS = {
    "state": "state", "connected": "connected", "last_error": "last_error",
    "outbox/depth": "outbox_depth", "outbox/bytes": "outbox_bytes",
    "outbox/lag_messages": "outbox_lag_messages", "outbox/lag_seconds": "outbox_lag_seconds",
    "outbox/dropped": "outbox_dropped", "messages/sent": "sent",
    "messages/received": "received", "rate/sent": "send_rate", "rate/received": "receive_rate",
}
STATE_FIELDS = ("state", "connected", "last_error")  # published at once on a state change


@dataclass(slots=True)
class Rate:
    """An exponentially weighted messages/s of a growing counter."""

    value: float = 0.0
    seen: int = 0

    def update(self, count: int, dt: float) -> None:
        if dt <= 0:
            return
        alpha = 1.0 - math.exp(-dt / RATE_TIME_CONSTANT)
        self.value += alpha * ((count - self.seen) / dt - self.value)
        self.seen = count


def outbox_figures(queues: Iterable[QueueStats]) -> dict[str, Any]:
    """Depth, bytes, lag and drops of a bridge's outbox queues, as record fields."""
    stats = list(queues)
    return {
        "outbox_depth": sum(q.depth for q in stats),
        "outbox_bytes": sum(q.bytes for q in stats),
        "outbox_inflight": sum(q.inflight for q in stats),
        "outbox_lag_messages": sum(q.lag_messages for q in stats),
        "outbox_lag_seconds": max((q.lag_seconds for q in stats), default=0.0),
        "outbox_oldest_age": max((q.oldest_age for q in stats), default=0.0),
        "outbox_dropped": sum(q.dropped + q.rejected + q.expired for q in stats),
        "outbox_queues": [q.name for q in stats],
    }


def sys_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        return ""
    return str(value)


def sys_entries(record: dict[str, Any], fields: Iterable[str] = SYS_FIELDS) -> list[
        tuple[str, str]]:
    """(topic, payload) pairs of one bridge record under `$SYS/broker/bridges/<name>/`."""
    base = f"$SYS/broker/bridges/{record['name']}/"
    return [(base + topic, sys_value(record[SYS_FIELDS[topic]])) for topic in fields]
