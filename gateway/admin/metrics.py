"""Prometheus text exposition of the broker and queue statistics (`GET /metrics`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from gateway.broker import sysstats

if TYPE_CHECKING:
    from gateway.broker.server import Broker

_QUEUE_FIELDS = ("depth", "bytes", "consumers", "inflight", "in_rate", "out_rate", "lag_messages",
                 "lag_seconds", "oldest_age", "enqueued", "acked", "redelivered", "dropped",
                 "rejected", "replaced", "dead_lettered", "expired")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(broker: Broker) -> str:
    lines: list[str] = []
    for key, value in sysstats.snapshot(broker).items():
        if isinstance(value, (int, float)):
            name = "edgeq_" + key.replace("/", "_").replace(" ", "_")
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
    stats = [msgspec.to_builtins(s) for s in broker.engine.stats()]
    for field in _QUEUE_FIELDS:
        name = f"edgeq_queue_{field}"
        lines.append(f"# TYPE {name} gauge")
        for q in stats:
            lines.append(f'{name}{{queue="{_label(q["name"])}"}} {q.get(field, 0)}')
    return "\n".join(lines) + "\n"
