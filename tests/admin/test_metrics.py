"""`GET /metrics` as Prometheus reads it: parsed with prometheus_client's own text parser (what
promtool checks), counters typed as counters with `_total` samples so rate() works, gauges as
gauges, per-queue series capped; and the Grafana dashboard in docs/ asks only for series that
exist."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
QUEUES = """
[[queues]]
filter = "jobs/#"
name = "jobs"

[[queues]]
filter = "spare/#"
name = "spare"
"""


def scrape(gw: GatewayProcess) -> dict[str, Metric]:
    url = json.loads((gw.data_dir / "admin.json").read_text())["url"]
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    assert len({f.name for f in families}) == len(families), "a family appears twice"
    return {f.name: f for f in families}


def publish(gw: GatewayProcess, topic: str, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="metrics-pub")
    client.connect("127.0.0.1", gw.port)
    client.loop_start()
    try:
        for _ in range(count):
            client.publish(topic, b"x", qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def value(family: Metric, sample: str, **labels: str) -> float:
    return next(s.value for s in family.samples if s.name == sample and s.labels == labels)


def test_metrics_are_typed_for_prometheus(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(QUEUES)
    publish(gw, "jobs/a", 3)
    families = scrape(gw)
    assert not [f.name for f in families.values() if f.type in ("unknown", "untyped")]
    for name in ("edgeq_queue_enqueued", "edgeq_queue_acked", "edgeq_queue_dead_lettered",
                 "edgeq_messages_received", "edgeq_bytes_received", "edgeq_logins_failed",
                 "edgeq_connections", "edgeq_store_commits", "edgeq_queue_limit_refusals"):
        assert families[name].type == "counter", name
        assert all(s.name == f"{name}_total" for s in families[name].samples), name
    for name in ("edgeq_queue_depth", "edgeq_queue_lag_seconds", "edgeq_queue_consumers",
                 "edgeq_clients_connected", "edgeq_memory_in_use", "edgeq_queues_backlog"):
        assert families[name].type == "gauge", name
    assert families["edgeq_build_info"].samples[0].labels["version"].startswith("edgeq ")
    assert value(families["edgeq_queue_enqueued"], "edgeq_queue_enqueued_total",
                 queue="jobs") == 3
    assert value(families["edgeq_queue_depth"], "edgeq_queue_depth", queue="jobs") == 3
    assert value(families["edgeq_messages_received"], "edgeq_messages_received_total") >= 3


def test_per_queue_series_stop_at_admin_metrics_queues(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(QUEUES + "\n[admin]\nmetrics_queues = 1\n")
    families = scrape(gw)
    assert {s.labels["queue"] for s in families["edgeq_queue_depth"].samples} == {"jobs"}
    assert value(families["edgeq_metrics_queues_left_out"],
                 "edgeq_metrics_queues_left_out") == 1


def test_the_grafana_dashboard_asks_for_series_that_exist(
        gateway_factory: GatewayFactory) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and dashboard["title"]
    samples = {s.name for f in scrape(gateway_factory(QUEUES)).values() for s in f.samples}
    for expr in exprs:
        used = set(re.findall(r"\bedgeq_[a-z_]+", expr))
        assert used and used <= samples, (expr, used - samples)
