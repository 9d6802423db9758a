"""Queue statistics as an operator reads them on a running gateway, after real clients have
published and consumed: the `$SYS/broker/queues` JSON and per-queue `$SYS` topics, the admin API,
`edgeq queue list|show`, and Prometheus text. All four tell the same story."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.mqtt.packets import MQTT_5, MQTT_311
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, edgeq_ok, publish, table, wait_until
from tests.support.clients import RawClient, connected

CONFIG = """
[mqtt]
sys_interval = 1

[[queues]]
filter = "work/#"
name = "work"
max_inflight = 2
max_deliveries = 2

[[queues]]
filter = "ring/#"
name = "ring"
max_messages = 3
overflow = "drop_oldest"

[[queues]]
filter = "state/+"
name = "state"
last_value_key = "topic_level:1"

[[queues]]
filter = "capped"
name = "capped"
max_messages = 1
overflow = "reject_new"

[[queues]]
filter = "images/+"
"""


class SysWatcher:
    """A subscriber to `$SYS/broker/queues/#` that keeps the latest payload of each topic.

    It decodes with the gateway's strict codec, so a topic name the broker should never send
    (a wildcard in a PUBLISH) fails the test."""

    def __init__(self, port: int) -> None:
        self.client = connected(port, f"sys-{time.monotonic_ns()}", MQTT_311)
        self.client.subscribe("$SYS/broker/queues", "$SYS/broker/queues/#", qos=0)
        self.latest: dict[str, str] = {}

    def wait(self, topic: str, check: Any, timeout: float = 5.0) -> str:
        """Read until the latest payload of `topic` passes `check(payload)`; return it."""
        deadline = time.monotonic() + timeout
        while True:
            payload = self.latest.get(topic)
            if payload is not None and check(payload):
                return payload
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{topic}: last {payload!r}"
            try:
                message = self.client.receive(timeout=remaining)
            except TimeoutError:
                continue
            self.latest[message.topic] = message.payload.decode()

    def queues(self, check: Any) -> dict[str, dict[str, Any]]:
        """The `$SYS/broker/queues` document, by queue name, once `check(doc)` holds."""
        def by_name(payload: str) -> dict[str, dict[str, Any]]:
            return {q["name"]: q for q in json.loads(payload)}
        return by_name(self.wait("$SYS/broker/queues", lambda p: check(by_name(p))))

    def close(self) -> None:
        self.client.close()


def prometheus(text: str, field: str, queue: str) -> float:
    prefix = f'edgeq_queue_{field}{{queue="{queue}"}} '
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return float(line[len(prefix):])


def test_live_figures_depth_consumers_in_flight_and_lag(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    admin = Admin(gw)
    publish(gw.port, "work/a", *[f"w{i}" for i in range(5)])
    publish(gw.port, "images/cam1", "frame")
    holder = connected(gw.port, "holder", MQTT_311)
    holder.subscribe("$queue/work", qos=1)
    assert [holder.receive(ack=False).payload for _ in range(2)] == [b"w0", b"w1"]
    sys = SysWatcher(gw.port)
    try:
        # lag in seconds is the age of the oldest unacknowledged message: let it pass 1 s
        api = wait_until(lambda: (s := admin.stats("work"))["oldest_age"] >= 1.0 and s,
                         5, "a second of lag")
        assert {k: api[k] for k in ("depth", "consumers", "inflight", "lag_messages")} == {
            "depth": 5, "consumers": 1, "inflight": 2, "lag_messages": 3}
        assert api["bytes"] == 5 * len("work/a" "w0") and api["lag_seconds"] >= 1.0

        listed = table(edgeq_ok(gw.data_dir, "list"))["work"]
        assert (listed["depth"], listed["consumers"], listed["inflight"],
                listed["lag_messages"]) == ("5", "1", "2", "3")
        assert float(listed["lag_seconds"]) >= 1.0
        shown = json.loads(edgeq_ok(gw.data_dir, "show", "work"))
        assert shown["consumers"] == [{"client_id": "holder", "qos": 1, "inflight": 2,
                                       "acked": 0, "active": True}]

        doc = sys.queues(lambda d: d["work"]["lag_seconds"] >= 1.0)
        assert (doc["work"]["depth"], doc["work"]["inflight"], doc["work"]["consumers"],
                doc["work"]["lag_messages"]) == (5, 2, 1, 3)
        assert sys.wait("$SYS/broker/queues/work/depth", lambda p: p == "5")
        assert sys.wait("$SYS/broker/queues/work/inflight", lambda p: p == "2")
        assert sys.wait("$SYS/broker/queues/work/consumers", lambda p: p == "1")
        assert sys.wait("$SYS/broker/queues/work/lag_messages", lambda p: p == "3")
        assert float(sys.wait("$SYS/broker/queues/work/lag_seconds",
                              lambda p: float(p) >= 1.0)) >= 1.0
        # a queue named by its filter: the wildcard level is spelled out in the topic name
        assert sys.wait("$SYS/broker/queues/images/any/depth", lambda p: p == "1")
        assert doc["images/+"]["depth"] == 1

        metrics = admin.metrics()
        assert prometheus(metrics, "depth", "work") == 5
        assert prometheus(metrics, "inflight", "work") == 2
        assert prometheus(metrics, "lag_messages", "work") == 3
        assert prometheus(metrics, "lag_seconds", "work") >= 1.0
        assert prometheus(metrics, "depth", "images/+") == 1
    finally:
        sys.close()
        holder.close()


def test_counters_redeliveries_drops_replacements_rejections_dead_letters(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    admin = Admin(gw)
    publish(gw.port, "work/a", *[f"w{i}" for i in range(5)])
    for attempt in range(2):  # two consumers die holding w0 and w1: max_deliveries = 2
        with connected(gw.port, f"dies-{attempt}", MQTT_311) as doomed:
            doomed.subscribe("$queue/work", qos=1)
            got = [doomed.receive(ack=False) for _ in range(2)]
            assert [(m.payload, m.dup) for m in got] == [(b"w0", attempt > 0),
                                                         (b"w1", attempt > 0)]
    publish(gw.port, "ring/r", *[f"r{i}" for i in range(5)])
    publish(gw.port, "state/lamp", "off", "on", "dim")
    assert publish(gw.port, "capped", "fits", "refused", version=MQTT_5) == [0, 0x97]

    want: dict[str, dict[str, Any]] = {
        "work": {"depth": 3, "redelivered": 2, "dead_lettered": 2, "consumers": 0},
        "$dlq/work": {"depth": 2, "kind": "dead_letter"},
        "ring": {"depth": 3, "dropped": 2},
        "state": {"depth": 1, "replaced": 2, "kind": "last_value"},
        "capped": {"depth": 1, "rejected": 1},
    }

    def matches(by_name: dict[str, dict[str, Any]]) -> bool:
        return all(name in by_name and all(by_name[name][k] == v for k, v in fields.items())
                   for name, fields in want.items())

    api = {q["name"]: q for q in admin.get("queues")}
    assert matches(api), api
    assert admin.queue("work")["dead_letter"]["depth"] == 2
    assert [m["payload"] for m in admin.queue("work")["dead_letter"]["sample"]] == ["w0", "w1"]

    shown = {name: json.loads(edgeq_ok(gw.data_dir, "show", name))["stats"] for name in want}
    assert matches(shown), shown

    sys = SysWatcher(gw.port)
    try:
        sys.queues(matches)
        assert sys.wait("$SYS/broker/queues/$dlq/work/depth", lambda p: p == "2")
    finally:
        sys.close()

    metrics = admin.metrics()
    assert prometheus(metrics, "redelivered_total", "work") == 2
    assert prometheus(metrics, "dead_lettered_total", "work") == 2
    assert prometheus(metrics, "dropped_total", "ring") == 2
    assert prometheus(metrics, "replaced_total", "state") == 2
    assert prometheus(metrics, "rejected_total", "capped") == 1

    with RawClient(gw.port, MQTT_311) as dlq:  # the dead letters, consumable by name
        dlq.connect("dlq-reader")
        dlq.subscribe("$queue/$dlq/work", qos=1)
        assert [dlq.receive().payload for _ in range(2)] == [b"w0", b"w1"]
    wait_until(lambda: admin.stats("$dlq/work")["depth"] == 0, 5, "the dead letters consumed")


def test_a_deleted_queue_leaves_no_stale_sys_topics(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    Admin(gw)
    edgeq_ok(gw.data_dir, "create", "tmp/+")
    publish(gw.port, "tmp/x", "one")
    sys = SysWatcher(gw.port)
    try:
        sys.wait("$SYS/broker/queues/tmp/any/depth", lambda p: p == "1")
        edgeq_ok(gw.data_dir, "delete", "tmp/+")
        sys.wait("$SYS/broker/queues/tmp/any/depth", lambda p: p == "")  # the retained clear
    finally:
        sys.close()
    with connected(gw.port, "newcomer", MQTT_311) as newcomer:
        newcomer.subscribe("$SYS/broker/queues/tmp/#", qos=0)
        newcomer.expect_silence(0.3)
