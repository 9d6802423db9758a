"""The dead-letter workflow through the CLI and the admin API: list, peek without consuming,
replay into the source queue, purge (issue 16)."""

from __future__ import annotations

import json
import time

from gateway.mqtt.packets import MQTT_5, PubAck
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, edgeq_ok, edgeq_queue, publish, table, wait_until
from tests.support.clients import connected

CONFIG = """
[[queues]]
filter = "work/#"
name = "work"
max_deliveries = 1

[[queues]]
filter = "dev/+/cmd"
template = true
max_deliveries = 1
"""


def kill_all(gw_port: int, name: str, count: int) -> None:
    """A 5.0 consumer of `name` rejects `count` deliveries: with max_deliveries 1, all die."""
    with connected(gw_port, f"rejecter-{name}", MQTT_5) as client:
        client.subscribe(f"$queue/{name}", qos=1)
        for _ in range(count):
            client.send_packet(PubAck(client.receive(ack=False).packet_id, 0x80))


def test_list_peek_replay_and_purge_dead_letters(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    admin = Admin(gw)
    publish(gw.port, "work/1", "w1", "w2", "w3")
    kill_all(gw.port, "work", 3)
    publish(gw.port, "dev/a/cmd", "a1")
    kill_all(gw.port, "dev/a/cmd", 1)
    wait_until(lambda: admin.stats("$dlq/work")["depth"] == 3, 3, "three dead letters")
    time.sleep(0.3)  # a commit cycle
    gw.kill()  # dead letters, their names and marks survive a crash
    gw.start()
    admin = Admin(gw)
    assert admin.stats("$dlq/work")["kind"] == "dead_letter"
    assert admin.queue("work")["dead_letter"]["depth"] == 3

    listed = table(edgeq_ok(gw.data_dir, "list", "--kind", "dead_letter"))
    assert set(listed) == {"$dlq/work", "$dlq/dev/+/cmd"}

    peeked = [json.loads(line) for line in
              edgeq_ok(gw.data_dir, "peek", "$dlq/work", "--limit", "2").splitlines()]
    assert [(m["payload"], m["reason"], m["source"]) for m in peeked] == [
        ("w1", "max_deliveries", "work"), ("w2", "max_deliveries", "work")]
    assert admin.stats("$dlq/work")["depth"] == 3  # peeking consumed nothing

    assert edgeq_ok(gw.data_dir, "replay", "work") == \
        "replayed 3 dead letters of work into their queues\n"
    assert edgeq_ok(gw.data_dir, "replay", "$dlq/dev/+/cmd") == \
        "replayed 1 dead letters of $dlq/dev/+/cmd into their queues\n"
    assert admin.stats("$dlq/work")["depth"] == 0
    assert admin.stats("dev/a/cmd")["depth"] == 1
    with connected(gw.port, "fixed-worker", MQTT_5) as worker:
        worker.subscribe("$queue/work", qos=1)
        got = [worker.receive() for _ in range(3)]
    assert [(m.payload, m.dup) for m in got] == [(b"w1", False), (b"w2", False), (b"w3", False)]
    assert all("user_property" not in m.properties for m in got)  # the marks are gone

    publish(gw.port, "work/2", "again")
    kill_all(gw.port, "work", 1)
    wait_until(lambda: admin.stats("$dlq/work")["depth"] == 1, 3, "a new dead letter")
    assert edgeq_ok(gw.data_dir, "purge", "$dlq/work") == "purged 1 messages from $dlq/work\n"
    reply = admin.request("GET", "/api/v1/queues/nope/messages")
    assert reply.status == 404
    refused = edgeq_queue(gw.data_dir, "replay", "nope")
    assert refused.returncode == 1 and refused.lines == [
        "edgeq: no queue named 'nope'; `edgeq queue list` shows them"]
