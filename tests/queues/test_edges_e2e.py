"""Queue semantics at the edges (issue 16): exact reason codes, refusals, redelivery and naming,
checked with raw-socket clients against one real `edgeq serve` per module."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    PubAck,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from tests.queues.e2e import Admin, publish, wait_until
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess

QUEUES = """
[[queues]]
filter = "ring/#"
name = "ring"
max_messages = 2
overflow = "drop_oldest"

[[queues]]
filter = "orders/#"
name = "orders"
max_deliveries = 1

[[queues]]
filter = "other/#"
name = "orders.dlq"

[[queues]]
filter = "jobs/#"
name = "jobs"

[[queues]]
filter = "unsub/#"
name = "unsub"

[[queues]]
filter = "lamp/+/cmd"
template = true

[[queues]]
filter = "lamp/l1/cmd"
name = "l1cmd"

[[queues]]
filter = "st/#"
name = "st"
dispatch = "sticky"

[[queues]]
filter = "sized/#"
name = "sized"

[[queues]]
filter = "lv/#"
name = "lv"
last_value_key = "json:k"

[[queues]]
filter = "ids/#"
name = "ids"

[[queues]]
filter = "nack/#"
name = "nack"
max_inflight = 1
max_deliveries = 3
redelivery_delay = 1

[[queues]]
filter = "held/#"
name = "held"
ttl = 2

[[queues]]
filter = "stale/#"
name = "stale"
ttl = 1
dead_letter_expired = true
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(data_dir=tmp_path_factory.mktemp("edges") / "var",
                             config_text=QUEUES).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def admin(gw: GatewayProcess) -> Admin:
    return Admin(gw)


def consumer(gw: GatewayProcess, *filters: str, version: int = MQTT_5) -> RawClient:
    client = connected(gw.port, f"c-{time.monotonic_ns()}", version)
    assert client.subscribe(*filters, qos=1).reason_codes == [1] * len(filters)
    return client


def unsubscribe(client: RawClient, topic_filter: str) -> None:
    client.send_packet(Unsubscribe(7, [topic_filter]))
    assert client.expect(Unsuback).packet_id == 7


# ------------------------------------------------------------------------------ item 10

def test_drop_oldest_always_answers_success(gw: GatewayProcess, admin: Admin) -> None:
    assert publish(gw.port, "ring/x", "1", "2", "3", version=MQTT_5) == [0, 0, 0]
    with consumer(gw, "$queue/ring") as held:
        assert [held.receive(ack=False).payload for _ in range(2)] == [b"2", b"3"]
        # both stored messages are in flight: a new one is dropped by the policy, and the
        # producer is told success, never 0x10 No matching subscribers
        assert publish(gw.port, "ring/x", "4", "5", version=MQTT_5) == [0, 0]
    assert admin.stats("ring")["dropped"] == 3


# ------------------------------------------------------------------------------ item 9

def test_dead_letter_names_cannot_collide_with_queue_names(gw: GatewayProcess,
                                                           admin: Admin) -> None:
    publish(gw.port, "other/1", "an ordinary message of the queue named orders.dlq")
    publish(gw.port, "orders/1", "poison")
    with consumer(gw, "$queue/orders") as worker:
        message = worker.receive(ack=False)
        worker.send_packet(PubAck(message.packet_id, 0x80))  # max_deliveries = 1: dead
        wait_until(lambda: admin.stats("orders")["dead_lettered"] == 1, 3, "the dead letter")
    assert admin.stats("$dlq/orders")["kind"] == "dead_letter"
    assert admin.stats("orders.dlq")["kind"] == "standard"
    assert (admin.stats("orders.dlq")["depth"], admin.stats("$dlq/orders")["depth"]) == (1, 1)
    assert admin.queue("orders")["dead_letter"]["name"] == "$dlq/orders"
    with consumer(gw, "$queue/$dlq/orders") as inspector:
        assert inspector.receive().payload == b"poison"
        inspector.expect_silence(0.3)
    with connected(gw.port, "reserved", MQTT_5) as client:
        codes = client.subscribe("$queue/$dlq/nothing", "$queue/$dlq/x/y", qos=1).reason_codes
        assert codes == [0x8F, 0x8F]
    reply = admin.request("POST", "/api/v1/queues", b'{"filter": "$dlq/x"}')
    assert reply.status == 400 and "reserved" in reply.json()["error"]


# ------------------------------------------------------------------------------ item 8

def test_a_queue_consumed_through_two_filters_keeps_the_consumer(gw: GatewayProcess,
                                                                 admin: Admin) -> None:
    with consumer(gw, "$queue/jobs", "$q/jobs/#") as worker:
        assert admin.stats("jobs")["consumers"] == 1
        unsubscribe(worker, "$q/jobs/#")
        publish(gw.port, "jobs/1", "still mine")
        assert worker.receive().payload == b"still mine"
        assert admin.stats("jobs")["consumers"] == 1
        unsubscribe(worker, "$queue/jobs")
        wait_until(lambda: admin.stats("jobs")["consumers"] == 0, 3, "the consumer leaving")


# ------------------------------------------------------------------------------ item 11

def test_unsubscribe_returns_unacknowledged_messages_at_once(gw: GatewayProcess) -> None:
    with consumer(gw, "$queue/unsub") as first:
        publish(gw.port, "unsub/1", "job")
        assert first.receive(ack=False).payload == b"job"
        with consumer(gw, "$queue/unsub") as second:
            second.expect_silence(0.3)
            unsubscribe(first, "$queue/unsub")
            again = second.receive(timeout=1.0)  # not after ack_timeout (60 s)
            assert (again.payload, again.dup) == (b"job", True)


def test_disconnect_returns_unacknowledged_messages_at_once(gw: GatewayProcess) -> None:
    first = consumer(gw, "$queue/unsub", version=MQTT_311)
    publish(gw.port, "unsub/2", "job2")
    assert first.receive(ack=False).payload == b"job2"
    with consumer(gw, "$queue/unsub") as second:
        first.close()
        again = second.receive(timeout=1.0)
        assert (again.payload, again.dup) == (b"job2", True)


# ------------------------------------------------------------------------------ item 6

def test_an_explicit_queue_takes_precedence_over_a_template(gw: GatewayProcess,
                                                            admin: Admin) -> None:
    publish(gw.port, "lamp/l1/cmd", "on")
    publish(gw.port, "lamp/l2/cmd", "off")
    assert admin.stats("l1cmd")["depth"] == 1
    assert admin.request("GET", "/api/v1/queues/lamp%2Fl1%2Fcmd").status == 404
    assert admin.stats("lamp/l2/cmd")["kind"] == "instance"
    with consumer(gw, "$q/lamp/l1/cmd") as device:
        assert device.receive().payload == b"on"
        device.expect_silence(0.3)
    assert admin.stats("l1cmd")["depth"] == 0


# ------------------------------------------------------------------------------ item 7

def test_sticky_does_not_hand_a_rejected_message_straight_back(gw: GatewayProcess) -> None:
    with consumer(gw, "$queue/st") as a, consumer(gw, "$queue/st") as b:
        publish(gw.port, "st/key", "m1")
        got = {}
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            for client in (a, b):
                with contextlib.suppress(TimeoutError):
                    got[id(client)] = (client, client.receive(timeout=0.1, ack=False))
        ((owner, message),) = got.values()
        other = b if owner is a else a
        owner.send_packet(PubAck(message.packet_id, 0x80))
        again = other.receive(timeout=2.0)
        assert (again.payload, again.dup) == (b"m1", True)
        owner.expect_silence(0.3)
        publish(gw.port, "st/key", "m2")  # the key now lives with the other consumer
        assert other.receive().payload == b"m2"
        owner.expect_silence(0.3)


# ------------------------------------------------------------------------------ item 4

def test_a_message_too_large_for_a_consumer_goes_to_another_or_is_dead_lettered(
        gw: GatewayProcess, admin: Admin) -> None:
    small = connected(gw.port, "small-device", MQTT_5, properties={"maximum_packet_size": 200})
    with small:
        assert small.subscribe("$queue/sized", qos=1).reason_codes == [1]
        publish(gw.port, "sized/1", "x" * 500)  # nobody else can take it: a dead letter
        wait_until(lambda: admin.stats("sized")["dead_lettered"] == 1, 3, "the dead letter")
        publish(gw.port, "sized/1", "fits")  # the head of the queue is not blocked
        assert small.receive().payload == b"fits"
        with consumer(gw, "$queue/sized") as big:
            publish(gw.port, "sized/1", "y" * 500, "z" * 500)
            got = [big.receive() for _ in range(2)]
            assert sorted(m.payload[:1] for m in got) == [b"y", b"z"]
            assert not any(m.dup for m in got)  # it was never sent to the small device
            small.expect_silence(0.3)
    stats = admin.stats("sized")
    assert stats["oversize"] >= 2 and stats["depth"] == 0
    (dead,) = admin.queue("sized")["dead_letter"]["sample"]
    assert dead["reason"] == "packet_too_large" and dead["bytes"] == 500
    assert "edgeq_queue_oversize_total{queue=\"sized\"}" in admin.metrics()


# ------------------------------------------------------------------------------ last-value types

def test_json_keys_keep_their_type(gw: GatewayProcess, admin: Admin) -> None:
    publish(gw.port, "lv/x", '{"k": 1, "v": "a"}', '{"k": "1", "v": "b"}', '{"k": true, "v": "c"}',
            '{"k": "True", "v": "d"}', '{"k": 1.0, "v": "e"}')
    stats = admin.stats("lv")
    assert (stats["depth"], stats["replaced"]) == (4, 1)  # only 1.0 replaces 1
    with consumer(gw, "$queue/lv") as reader:
        got = sorted(reader.receive().payload for _ in range(4))
        reader.expect_silence(0.3)
    assert got == sorted([b'{"k": 1.0, "v": "e"}', b'{"k": "1", "v": "b"}',
                          b'{"k": true, "v": "c"}', b'{"k": "True", "v": "d"}'])


# ------------------------------------------------------------------------------ 5.0 options

def test_subscription_identifiers_and_retain_as_published_apply_to_queues(
        gw: GatewayProcess) -> None:
    with connected(gw.port, "ids-reader", MQTT_5) as reader:
        rap = Subscription("$queue/ids", 1, retain_as_published=True)
        assert reader.subscribe(rap, properties={"subscription_identifier": [7]}) \
            .reason_codes == [1]
        with connected(gw.port, "ids-producer", MQTT_5) as producer:
            producer.publish("ids/a", b"kept", qos=1, retain=True)
            producer.publish("ids/a", b"plain", qos=1)
        got = [reader.receive() for _ in range(2)]
        assert [(m.payload, m.retain, m.properties.get("subscription_identifier"))
                for m in got] == [(b"kept", True, [7]), (b"plain", False, [7])]
    with connected(gw.port, "plain-reader", MQTT_5) as reader:
        reader.subscribe("$queue/ids", qos=1)
        with connected(gw.port, "ids-producer", MQTT_5) as producer:
            producer.publish("ids/b", b"kept", qos=1, retain=True)
        message = reader.receive()
        assert (message.retain, message.properties.get("subscription_identifier")) == (False,
                                                                                       None)


# ------------------------------------------------------------------------------ backoff, ttl

def test_a_rejected_message_waits_with_backoff_and_does_not_block_the_queue(
        gw: GatewayProcess, admin: Admin) -> None:
    with consumer(gw, "$queue/nack") as worker:
        publish(gw.port, "nack/1", "poison", "ok")
        first = worker.receive(ack=False)
        assert first.payload == b"poison"
        rejected_at = time.monotonic()
        worker.send_packet(PubAck(first.packet_id, 0x80))
        assert worker.receive().payload == b"ok"  # the window of one is not held by the poison
        again = worker.receive(ack=False, timeout=4)
        waited = time.monotonic() - rejected_at
        assert (again.payload, again.dup) == (b"poison", True) and waited >= 0.9
        worker.send_packet(PubAck(again.packet_id, 0x80))
        rejected_at = time.monotonic()
        third = worker.receive(ack=False, timeout=5)
        assert time.monotonic() - rejected_at >= 1.9  # twice the delay
        worker.send_packet(PubAck(third.packet_id, 0x80))  # max_deliveries = 3: dead
        wait_until(lambda: admin.stats("nack")["dead_lettered"] == 1, 3, "the dead letter")
    (dead,) = admin.queue("nack")["dead_letter"]["sample"]
    assert (dead["reason"], dead["source"]) == ("max_deliveries", "nack")


def test_time_in_flight_does_not_count_against_ttl(gw: GatewayProcess) -> None:
    holder = consumer(gw, "$queue/held")
    publish(gw.port, "held/1", "job")
    assert holder.receive(ack=False).payload == b"job"
    time.sleep(2.5)  # longer than the ttl, but in flight
    with consumer(gw, "$queue/held") as other:
        holder.close()
        again = other.receive(timeout=2)
        assert (again.payload, again.dup) == (b"job", True)


def test_expired_messages_can_go_to_the_dead_letter_queue(gw: GatewayProcess,
                                                          admin: Admin) -> None:
    publish(gw.port, "stale/1", "too late", version=MQTT_5,
            properties={"message_expiry_interval": 60})
    wait_until(lambda: admin.stats("stale")["expired"] == 1, 4, "the ttl to pass")
    assert admin.stats("stale")["dead_lettered"] == 1
    (dead,) = admin.queue("stale")["dead_letter"]["sample"]
    assert dead["reason"] == "expired"
    with consumer(gw, "$queue/$dlq/stale") as inspector:
        message = inspector.receive()
        assert message.payload == b"too late"
        assert "message_expiry_interval" not in message.properties  # a dead letter stays
        assert ("x-death-reason", "expired") in message.properties["user_property"]
