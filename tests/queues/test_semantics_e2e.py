"""The queue semantics of docs/queues.md, each checked once end to end: real MQTT clients over
real sockets against a real `edgeq serve`. One gateway serves the whole module, one queue per
test; the reload test starts its own."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, PubRec
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, publish, wait_until
from tests.support.clients import RawClient, connected, mosquitto_pub
from tests.support.procs import GatewayProcess

QUEUES = """
[[queues]]
filter = "rr/#"
name = "rr"
dispatch = "round_robin"

[[queues]]
filter = "sticky/#"
name = "sticky"
dispatch = "sticky"

[[queues]]
filter = "rand/#"
name = "rand"
dispatch = "random"

[[queues]]
filter = "slow/#"
name = "slow"
ack_timeout = 1

[[queues]]
filter = "poison/#"
name = "poison"
max_deliveries = 2

[[queues]]
filter = "ttl/#"
name = "ttl"
ttl = 1

[[queues]]
filter = "expiry/#"
name = "expiry"

[[queues]]
filter = "ring/#"
name = "ring"
max_messages = 3
overflow = "drop_oldest"

[[queues]]
filter = "ringb/#"
name = "ringb"
max_bytes = 45
overflow = "drop_oldest"

[[queues]]
filter = "full/#"
name = "full"
max_messages = 2
overflow = "reject_new"

[[queues]]
filter = "fullb/#"
name = "fullb"
max_bytes = 30
overflow = "reject_new"

[[queues]]
filter = "dev/+/cmd"
template = true
last_value_key = "user_property:command_type|json:command_type"

[[queues]]
filter = "named/#"
name = "named"

[[queues]]
filter = "qos0/#"
name = "qos0"

[[queues]]
filter = "window/#"
name = "window"
max_inflight = 10

[[queues]]
filter = "fifo/#"
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(data_dir=tmp_path_factory.mktemp("semantics") / "var",
                             config_text=QUEUES).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def admin(gw: GatewayProcess) -> Admin:
    return Admin(gw)


def consumers(gw: GatewayProcess, queue: str, n: int, version: int = MQTT_311,
              **connect: Any) -> list[RawClient]:
    """`n` connected consumers subscribed to `$queue/<queue>` at QoS 1."""
    out = []
    for i in range(n):
        client = connected(gw.port, f"{queue}-{i}-{time.monotonic_ns()}", version, **connect)
        assert client.subscribe(f"$queue/{queue}", qos=1).reason_codes == [1]
        out.append(client)
    return out


def collect(clients: list[RawClient], total: int, timeout: float = 5.0) -> list[list[bytes]]:
    """Receive (and acknowledge) until `total` messages have arrived across `clients`."""
    got: list[list[bytes]] = [[] for _ in clients]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < total:
        assert time.monotonic() < deadline, f"only {sum(map(len, got))} of {total}: {got}"
        for i, client in enumerate(clients):
            with contextlib.suppress(TimeoutError):
                got[i].append(client.receive(timeout=0.05).payload)
    for client in clients:
        client.expect_silence(0.2)
    return got


def close_all(clients: list[RawClient]) -> None:
    for client in clients:
        client.close()


# ------------------------------------------------------------------------------ dispatch

def test_round_robin_alternates(gw: GatewayProcess) -> None:
    pool = consumers(gw, "rr", 2)
    try:
        publish(gw.port, "rr/job", *[str(i) for i in range(6)])
        got = sorted(collect(pool, 6))
        assert got == [[b"0", b"2", b"4"], [b"1", b"3", b"5"]]
    finally:
        close_all(pool)


def test_sticky_keeps_each_key_on_one_consumer_in_order(gw: GatewayProcess) -> None:
    pool = consumers(gw, "sticky", 3)
    try:
        # five keys (the topic, as the queue has no last-value key), interleaved
        with connected(gw.port, "sticky-producer", MQTT_311) as producer:
            for i in range(6):
                for k in range(5):
                    producer.publish(f"sticky/k{k}", f"k{k}-{i}".encode(), qos=1,
                                     packet_id=i * 5 + k + 1)
        got = collect(pool, 30)
    finally:
        close_all(pool)
    owners: dict[str, int] = {}
    for i, payloads in enumerate(got):
        for payload in payloads:
            key = payload.decode().split("-")[0]
            assert owners.setdefault(key, i) == i, f"{key} went to two consumers: {got}"
    assert len(set(owners.values())) >= 2, "every key went to one consumer"
    k0 = [p for p in got[owners["k0"]] if p.startswith(b"k0-")]
    assert k0 == [f"k0-{i}".encode() for i in range(6)]  # per-key order kept


def test_random_spreads_over_every_consumer(gw: GatewayProcess) -> None:
    pool = consumers(gw, "rand", 3)
    try:
        publish(gw.port, "rand/job", *[str(i) for i in range(60)])
        got = collect(pool, 60)
    finally:
        close_all(pool)
    assert all(got), f"a consumer got nothing: {[len(g) for g in got]}"
    assert sorted(p for g in got for p in g) == sorted(str(i).encode() for i in range(60))


def test_receive_maximum_caps_a_consumers_window(gw: GatewayProcess, admin: Admin) -> None:
    # the queue allows 10 in flight; the 5.0 client allows only 2
    (small,) = consumers(gw, "window", 1, MQTT_5, properties={"receive_maximum": 2})
    try:
        publish(gw.port, "window/job", *[str(i) for i in range(6)])
        first = [small.receive(ack=False) for _ in range(2)]
        small.expect_silence(0.5)
        assert admin.queue("window")["consumers"][0]["inflight"] == 2
        small.send_packet(PubAck(first[0].packet_id))
        assert small.receive(ack=False).payload == b"2"
        small.expect_silence(0.3)
    finally:
        small.close()


def test_a_qos0_consumer_consumes_by_receiving(gw: GatewayProcess, admin: Admin) -> None:
    publish(gw.port, "qos0/reading", "a", "b", "c")
    with connected(gw.port, "qos0-reader", MQTT_311) as reader:
        assert reader.subscribe("$queue/qos0", qos=0).reason_codes == [0]
        got = [reader.receive() for _ in range(3)]
    assert [(m.payload, m.qos, m.packet_id) for m in got] == [
        (b"a", 0, 0), (b"b", 0, 0), (b"c", 0, 0)]
    stats = admin.stats("qos0")
    assert (stats["depth"], stats["acked"], stats["redelivered"]) == (0, 3, 0)


def test_a_qos2_consumer_acknowledges_with_pubcomp(gw: GatewayProcess, admin: Admin) -> None:
    publish(gw.port, "fifo/exactly", "once")
    with connected(gw.port, "qos2-reader", MQTT_5) as reader:
        assert reader.subscribe("$q/fifo/#", qos=2).reason_codes == [2]
        message = reader.receive()  # PUBREC, PUBREL, PUBCOMP
        assert (message.payload, message.qos) == (b"once", 2)
        wait_until(lambda: admin.stats("fifo/#")["depth"] == 0, 3, "PUBCOMP to consume it")


def test_a_persistent_consumer_rejoins_its_queue_without_subscribing_again(
        gateway_factory: GatewayFactory) -> None:
    # what a umqtt.simple device does: clean session off, subscribe once
    gw = gateway_factory(QUEUES)
    with connected(gw.port, "lamp", MQTT_311, clean_start=False) as lamp:
        lamp.subscribe("$q/dev/lamp/cmd", qos=1)
        publish(gw.port, "dev/lamp/cmd", '{"command_type": "set-color", "color": "red"}')
        held = lamp.receive(ack=False)  # the lamp loses power before its PUBACK
    publish(gw.port, "dev/lamp/cmd", '{"command_type": "reboot"}')
    gw.restart()
    with connected(gw.port, "lamp", MQTT_311, clean_start=False) as lamp:
        got = sorted((m.payload, m.dup) for m in (lamp.receive(), lamp.receive()))
        lamp.expect_silence(0.3)
    assert got == [(b'{"command_type": "reboot"}', False), (held.payload, True)]


# ------------------------------------------------------------------------------ redelivery

def test_ack_timeout_redelivers_with_dup(gw: GatewayProcess, admin: Admin) -> None:
    (stuck,) = consumers(gw, "slow", 1)
    publish(gw.port, "slow/job", "the-job")
    first = stuck.receive(ack=False)
    assert first.payload == b"the-job" and not first.dup
    (other,) = consumers(gw, "slow", 1)
    try:
        # unacknowledged for ack_timeout (1 s): back to the queue, to the other consumer
        again = other.receive(timeout=4)
        assert again.payload == b"the-job" and again.dup
        stuck.send_packet(PubAck(first.packet_id))  # too late: ignored
        wait_until(lambda: admin.stats("slow")["depth"] == 0, 3, "the job acknowledged")
        assert admin.stats("slow")["redelivered"] == 1
        stuck.expect_silence(0.3)
    finally:
        close_all([stuck, other])


def test_max_deliveries_moves_a_poison_message_to_the_dead_letter_queue(
        gw: GatewayProcess, admin: Admin) -> None:
    publish(gw.port, "poison/x", "poison")
    with connected(gw.port, "crashes", MQTT_311) as crashes:  # 1st delivery: dies holding it
        crashes.subscribe("$queue/poison", qos=1)
        assert crashes.receive(ack=False).payload == b"poison"
    with connected(gw.port, "refuses", MQTT_5) as refuses:  # 2nd: a 5.0 reject
        refuses.subscribe("$queue/poison", qos=1)
        second = refuses.receive(ack=False)
        assert second.dup
        refuses.send_packet(PubAck(second.packet_id, 0x80))
        refuses.expect_silence(0.5)  # not a third time
    stats = admin.stats("poison")
    assert (stats["depth"], stats["dead_lettered"]) == (0, 1)
    with connected(gw.port, "inspector", MQTT_311) as inspector:
        assert inspector.subscribe("$queue/$dlq/poison", qos=1).reason_codes == [1]
        dead = inspector.receive()
        assert (dead.topic, dead.payload) == ("poison/x", b"poison")


# ------------------------------------------------------------------------------ expiry, limits

def test_ttl_expires_a_message_nobody_took(gw: GatewayProcess, admin: Admin) -> None:
    publish(gw.port, "ttl/x", "stale")
    wait_until(lambda: admin.stats("ttl")["expired"] == 1, 4, "the ttl to pass")
    publish(gw.port, "ttl/x", "fresh")
    with connected(gw.port, "ttl-reader", MQTT_311) as reader:
        reader.subscribe("$queue/ttl", qos=1)
        assert reader.receive().payload == b"fresh"
        reader.expect_silence(0.3)


def test_message_expiry_is_honoured_and_the_rest_forwarded(gw: GatewayProcess) -> None:
    publish(gw.port, "expiry/x", "short", version=MQTT_5,
            properties={"message_expiry_interval": 1})
    publish(gw.port, "expiry/x", "long", version=MQTT_5,
            properties={"message_expiry_interval": 60})
    time.sleep(1.5)
    with connected(gw.port, "expiry-reader", MQTT_5) as reader:
        reader.subscribe("$queue/expiry", qos=1)
        got = reader.receive()
        reader.expect_silence(0.3)
    assert got.payload == b"long"
    assert 55 <= got.properties["message_expiry_interval"] < 60


def test_drop_oldest_keeps_the_newest_by_count_and_by_bytes(gw: GatewayProcess,
                                                             admin: Admin) -> None:
    publish(gw.port, "ring/x", *[f"r{i}" for i in range(5)])
    publish(gw.port, "ringb/x", *[f"b-{i:06d}" for i in range(5)])  # 7 + 8 bytes: 3 fit in 45
    with connected(gw.port, "ring-reader", MQTT_311) as reader:
        reader.subscribe("$queue/ring", "$queue/ringb", qos=1)
        got = sorted(reader.receive().payload for _ in range(6))
        reader.expect_silence(0.3)
    assert got == [b"b-000002", b"b-000003", b"b-000004", b"r2", b"r3", b"r4"]
    assert admin.stats("ring")["dropped"] == 2 and admin.stats("ringb")["dropped"] == 2


def test_reject_new_answers_quota_exceeded(gw: GatewayProcess, admin: Admin) -> None:
    assert publish(gw.port, "full/x", "1", "2", "3", version=MQTT_5) == [0, 0, 0x97]
    assert publish(gw.port, "full/x", "4", version=MQTT_311) == [0]  # 3.1.1: no negative ack
    with connected(gw.port, "qos2-producer", MQTT_5) as producer:
        refused = producer.publish("full/x", b"5", qos=2)
        assert isinstance(refused, PubRec) and refused.reason_code == 0x97
    assert publish(gw.port, "fullb/x", "0123456789", "0123456789",  # 17 bytes each, max 30
                   version=MQTT_5) == [0, 0x97]
    assert admin.stats("full")["rejected"] == 3 and admin.stats("fullb")["rejected"] == 1
    with connected(gw.port, "full-reader", MQTT_311) as reader:
        reader.subscribe("$queue/full", "$queue/fullb", qos=1)
        got = sorted(reader.receive().payload for _ in range(3))
        reader.expect_silence(0.3)
    assert got == [b"0123456789", b"1", b"2"]


# ------------------------------------------------------------------------------ templates

def test_a_template_keeps_commands_for_a_device_that_never_connected(gw: GatewayProcess,
                                                                     admin: Admin) -> None:
    for colour in ("blue", "red", "green"):
        mosquitto_pub(gw.port, "-V", "mqttv5", "-q", "1", "-t", "dev/never-seen/cmd",
                      "-D", "publish", "user-property", "command_type", "set-color",
                      "-m", colour)
    mosquitto_pub(gw.port, "-q", "1", "-t", "dev/never-seen/cmd",  # a 3.1.1 producer: JSON key
                  "-m", '{"command_type": "reboot", "at": 1}')
    assert admin.stats("dev/never-seen/cmd")["kind"] == "instance"
    with connected(gw.port, "never-seen", MQTT_311) as device:
        device.subscribe("$q/dev/never-seen/cmd", qos=1)
        got = sorted(device.receive().payload for _ in range(2))
        device.expect_silence(0.3)
    assert got == [b"green", b'{"command_type": "reboot", "at": 1}']


def test_a_template_instance_is_created_on_subscribe(gw: GatewayProcess, admin: Admin) -> None:
    with connected(gw.port, "early-bird", MQTT_311) as device:
        assert device.subscribe("$q/dev/early-bird/cmd", qos=1).reason_codes == [1]
        assert admin.queue("dev/early-bird/cmd")["consumers"][0]["client_id"] == "early-bird"
        publish(gw.port, "dev/early-bird/cmd", "hello")
        message = device.receive()
        assert (message.topic, message.payload) == ("dev/early-bird/cmd", b"hello")
        # the template itself is not a queue to consume
        assert device.subscribe("$q/dev/+/cmd", qos=1, packet_id=2).reason_codes == [0x80]


# ------------------------------------------------------------------------------ consumer forms

def test_named_forms_from_a_311_client(gw: GatewayProcess, admin: Admin) -> None:
    with connected(gw.port, "emqx-style", MQTT_311) as client:
        codes = client.subscribe("$queue/named", "$queue/fresh/fresh/orders/#",
                                 "$queue/fresh/elsewhere/#", "$queue/unknown", qos=1)
        # a name on its own must exist; name/filter would create it, which needs an ACL
        # grant (`queue create`, tests/auth/test_authorization_e2e.py); another filter is refused
        assert codes.reason_codes == [1, 0x80, 0x80, 0x80]
        publish(gw.port, "named/a", "by name")
        message = client.receive()
    assert (message.topic, message.payload) == ("named/a", b"by name")
    assert admin.request("GET", "/api/v1/queues/fresh").status == 404


# ------------------------------------------------------------------------------ reload

BEFORE = """
[[queues]]
filter = "orders/#"
name = "orders"
max_inflight = 1
"""

AFTER = """
[[queues]]
filter = "orders/#"
name = "orders"
dispatch = "least_inflight"
max_inflight = 5

[[queues]]
filter = "audit/#"
name = "audit"
"""


def test_sighup_applies_queue_changes_without_dropping_a_consumer(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(BEFORE)
    assert gw.proc is not None
    admin = Admin(gw)
    with connected(gw.port, "steady", MQTT_311) as consumer:
        consumer.subscribe("$queue/orders", qos=1)
        publish(gw.port, "orders/1", "one", "two")
        first = consumer.receive(ack=False)
        consumer.expect_silence(0.3)  # a window of one

        gw.config_path.write_text(AFTER)
        os.kill(gw.proc.pid, signal.SIGHUP)
        wait_until(lambda: "audit" in {q["name"] for q in admin.get("queues")}, 5,
                   "the reload")
        assert admin.stats("orders")["dispatch"] == "least_inflight"
        assert consumer.receive(ack=False).payload == b"two"  # the wider window, at once
        consumer.send_packet(PubAck(first.packet_id))
        assert admin.stats("orders")["consumers"] == 1
        assert publish(gw.port, "audit/login", "alice") == [0]
        assert admin.stats("audit")["depth"] == 1

        gw.config_path.write_text("[[queues]\nfilter = ")  # a broken file is refused whole
        os.kill(gw.proc.pid, signal.SIGHUP)
        wait_until(lambda: "reload refused" in gw.log(), 5, "the refusal in the log")
        assert {q["name"] for q in admin.get("queues")} == {"orders", "audit"}
        publish(gw.port, "orders/2", "three")
        assert consumer.receive(ack=False).payload == b"three"
        assert not consumer.closed


def test_messages_wait_for_a_consumer_in_order_under_their_topic(gw: GatewayProcess) -> None:
    publish(gw.port, "fifo/late", *[f"m{i}" for i in range(20)])
    with connected(gw.port, "late-comer", MQTT_311) as client:
        client.subscribe("$q/fifo/#", qos=1)
        got = [client.receive() for _ in range(20)]
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(20)]
    assert all(m.topic == "fifo/late" and not m.dup for m in got)
