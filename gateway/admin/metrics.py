"""Prometheus metrics of the broker and its queues (`GET /metrics`), through `prometheus_client`.

A collector reads the same figures as `$SYS/` and the admin API at scrape time (nothing is
counted twice, nothing is added to the message path) and hands them to prometheus_client as
typed families: totals since start-up are counters, exposed with the `_total` suffix so that
`rate()` works (`edgeq_messages_received_total`, `edgeq_queue_enqueued_total`); what is now is a
gauge (`edgeq_clients_connected`, `edgeq_queue_depth`). Per-queue series carry a `queue` label;
at most `admin.metrics_queues` queues get them (in the order they were created, so the
configured ones first), which keeps a gateway with thousands of template instances from
flooding Prometheus; `edgeq_metrics_queues_left_out` says how many were left out.

prometheus_client (4 MB, 60 ms to import) is loaded by the first scrape, not at start-up: a
gateway nobody scrapes does not carry it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.broker import sysstats

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from gateway.broker.server import Broker

# The text format every Prometheus reads; edgeq's names need none of 1.0.0's escaping.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The `$SYS/broker/...` figures that are totals since start-up; the others are gauges.
BROKER_COUNTERS = frozenset({
    "clients/expired", "clients/duplicate ids", "messages/received", "messages/sent",
    "messages/dropped", "bytes/received", "bytes/sent", "connections/total", "protocol errors",
    "store/commits", "store/disk refused", "logins/failed", "logins/throttled", "logins/busy",
    "sessions/dropped", "limits/subscriptions refused", "limits/connections refused",
})

QUEUE_GAUGES = {
    "depth": "messages stored (ready and in flight)",
    "bytes": "topic and payload bytes stored",
    "consumers": "subscribed consumers",
    "inflight": "messages sent and not yet acknowledged",
    "in_rate": "messages enqueued per second (10 s moving average; rate() of "
               "edgeq_queue_enqueued_total is exact)",
    "out_rate": "messages consumed per second (10 s moving average; rate() of "
                "edgeq_queue_acked_total is exact)",
    "lag_messages": "ready messages not yet delivered",
    "lag_seconds": "age of the oldest unacknowledged message",
    "oldest_age": "age of the oldest message waiting for a delivery",
}
QUEUE_COUNTERS = {
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


def metric_name(key: str) -> str:
    """`clients/duplicate ids` -> `edgeq_clients_duplicate_ids` (a counter's family name,
    to which the exposition adds `_total`)."""
    return "edgeq_" + key.replace("/", "_").replace(" ", "_")


class BrokerCollector:
    """Everything `/metrics` shows, read from the broker at each scrape."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        broker = self.broker
        for key, value in sysstats.snapshot(broker).items():
            if key == "version":
                yield InfoMetricFamily("edgeq_build", "the running edgeq",
                                       value={"version": str(value)})
            elif isinstance(value, (int, float)):
                family = CounterMetricFamily if key in BROKER_COUNTERS else GaugeMetricFamily
                yield family(metric_name(key), f"$SYS/broker/{key}", value=value)
        yield from self._limits()
        yield from self._queues()

    def _limits(self) -> Iterator[Metric]:
        """What `storage.max_queues`, `max_instances` and `instance_expiry` apply to."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        limits = self.broker.engine.limits
        yield GaugeMetricFamily("edgeq_queues", "queues (template instances and dead-letter "
                                "queues not counted)", value=limits.queues)
        yield GaugeMetricFamily("edgeq_queue_instances", "template instances",
                                value=limits.instances)
        yield CounterMetricFamily("edgeq_queue_instances_expired",
                                  "idle template instances removed", value=limits.expired)
        refusals = CounterMetricFamily("edgeq_queue_limit_refusals",
                                       "creations refused at a limit", labels=["limit"])
        for limit, count in limits.refused.items():
            refusals.add_metric([limit], count)
        yield refusals

    def _queues(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.broker.engine.stats()
        cap = self.broker.config.admin.metrics_queues
        shown = stats[:cap]
        yield GaugeMetricFamily("edgeq_metrics_queues_left_out", "queues without per-queue "
                                "series here (beyond admin.metrics_queues)",
                                value=len(stats) - len(shown))
        for field, text in QUEUE_GAUGES.items():
            gauge = GaugeMetricFamily(f"edgeq_queue_{field}", text, labels=["queue"])
            for q in shown:
                gauge.add_metric([q.name], getattr(q, field))
            yield gauge
        for field, text in QUEUE_COUNTERS.items():
            counter = CounterMetricFamily(f"edgeq_queue_{field}", text, labels=["queue"])
            for q in shown:
                counter.add_metric([q.name], getattr(q, field))
            yield counter


class Exposition:
    """`GET /metrics` of one broker: a registry of its own (not the process-wide default)
    holding the broker's collector, made at the first scrape."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._registry: CollectorRegistry | None = None

    def text(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(BrokerCollector(self.broker))
        return generate_latest(self._registry)
