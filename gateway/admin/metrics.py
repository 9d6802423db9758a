"""Prometheus text exposition of the broker and queue statistics (`GET /metrics`).

Per queue, one series per figure with a `queue` label: gauges for what is now
(`edgeq_queue_depth`), counters with the `_total` suffix for totals since start-up
(`edgeq_queue_redelivered_total`), as Prometheus' naming rules ask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from gateway.broker import sysstats

if TYPE_CHECKING:
    from gateway.broker.server import Broker

_QUEUE_GAUGES = {
    "depth": "messages stored (ready and in flight)",
    "bytes": "topic and payload bytes stored",
    "consumers": "subscribed consumers",
    "inflight": "messages sent and not yet acknowledged",
    "in_rate": "messages enqueued per second (10 s moving average)",
    "out_rate": "messages consumed per second (10 s moving average)",
    "lag_messages": "ready messages not yet delivered",
    "lag_seconds": "age of the oldest unacknowledged message",
    "oldest_age": "age of the oldest message waiting for a delivery",
}
_QUEUE_COUNTERS = {
    "enqueued": "messages enqueued",
    "acked": "messages consumed (acknowledged, or sent at QoS 0)",
    "redelivered": "messages returned for redelivery",
    "dropped": "messages dropped by overflow",
    "rejected": "messages refused by reject_new",
    "replaced": "last-value replacements",
    "dead_lettered": "messages moved to the dead-letter queue",
    "expired": "messages expired (ttl or message expiry)",
    "nacked": "messages rejected by a consumer",
    "blocked": "times a producer was paused by a full block queue",
    "key_errors": "messages kept without a last-value key: payload beyond the size or nesting "
                  "limit",
    "oversize": "messages skipped for a consumer whose Maximum Packet Size they exceed",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _limit_lines(broker: Broker) -> list[str]:
    """What `storage.max_queues`, `max_instances` and `instance_expiry` apply to."""
    limits = broker.engine.limits
    lines = ["# HELP edgeq_queues queues (template instances and dead-letter queues not counted)",
             "# TYPE edgeq_queues gauge", f"edgeq_queues {limits.queues}",
             "# HELP edgeq_queue_instances template instances",
             "# TYPE edgeq_queue_instances gauge", f"edgeq_queue_instances {limits.instances}",
             "# HELP edgeq_queue_instances_expired_total idle template instances removed",
             "# TYPE edgeq_queue_instances_expired_total counter",
             f"edgeq_queue_instances_expired_total {limits.expired}",
             "# HELP edgeq_queue_limit_refusals_total creations refused at a limit",
             "# TYPE edgeq_queue_limit_refusals_total counter"]
    lines += [f'edgeq_queue_limit_refusals_total{{limit="{limit}"}} {count}'
              for limit, count in limits.refused.items()]
    return lines


def prometheus_text(broker: Broker) -> str:
    lines: list[str] = []
    for key, value in sysstats.snapshot(broker).items():
        if isinstance(value, (int, float)):
            name = "edgeq_" + key.replace("/", "_").replace(" ", "_")
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
    stats = [msgspec.to_builtins(s) for s in broker.engine.stats()]
    families = [(f"edgeq_queue_{f}", "gauge", f, text) for f, text in _QUEUE_GAUGES.items()]
    families += [(f"edgeq_queue_{f}_total", "counter", f, text)
                 for f, text in _QUEUE_COUNTERS.items()]
    lines += _limit_lines(broker)
    for name, kind, field, text in families:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for q in stats:
            lines.append(f'{name}{{queue="{_label(q["name"])}"}} {q.get(field, 0)}')
    return "\n".join(lines) + "\n"
