"""The publish pipeline at a full queue: a refused message goes nowhere, a will waits for room."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.mqtt.packets import (
    MQTT_5,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Subscription,
    Will,
)
from tests.conftest import GatewayFactory
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess

QUEUES = """
[[queues]]
name = "strict"
filter = "rj/#"
max_messages = 1
overflow = "reject_new"

[[queues]]
name = "held"
filter = "wl/#"
max_messages = 1
overflow = "block"
"""


@pytest.fixture
def gw(gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(config_text=QUEUES)


@pytest.fixture
def clients() -> Iterator[list[RawClient]]:
    opened: list[RawClient] = []
    yield opened
    for client in opened:
        client.close()


def test_a_message_refused_by_a_reject_new_queue_goes_nowhere(
        gw: GatewayProcess, clients: list[RawClient]) -> None:
    watcher = connected(gw.port, "watcher")
    clients.append(watcher)
    watcher.subscribe(Subscription("rj/#", 1))
    producer = connected(gw.port, "producer")
    clients.append(producer)
    first = producer.publish("rj/a", b"kept", qos=1, retain=True)
    second = producer.publish("rj/a", b"refused", qos=1, retain=True, packet_id=2)
    assert isinstance(first, PubAck) and first.reason_code == 0
    assert isinstance(second, PubAck) and second.reason_code == 0x97
    assert watcher.receive().payload == b"kept"
    watcher.expect_silence(0.3)
    late = connected(gw.port, "late")
    clients.append(late)
    late.subscribe(Subscription("rj/#", 1))
    retained = late.receive()
    assert (retained.payload, retained.retain) == (b"kept", True)


def test_a_will_into_a_full_block_queue_waits_for_room(
        gw: GatewayProcess, clients: list[RawClient]) -> None:
    producer = connected(gw.port, "filler")
    clients.append(producer)
    assert isinstance(ack := producer.publish("wl/first", b"first", qos=1), PubAck)
    assert ack.reason_code == 0
    dying = RawClient(gw.port, MQTT_5)
    assert dying.connect("dying", will=Will("wl/will", b"gone", 1, False)).reason_code == 0
    dying.close()  # no DISCONNECT: the will is due now, and the queue is full
    consumer = connected(gw.port, "consumer")
    clients.append(consumer)
    consumer.subscribe("$queue/held", qos=1)
    payloads = [consumer.receive().payload, consumer.receive().payload]
    assert payloads == [b"first", b"gone"]


def test_qos2_into_a_queue_is_exactly_once_across_a_crash(
        gateway_factory: GatewayFactory, clients: list[RawClient]) -> None:
    """The producer's PUBREC is lost in a crash: it sends the PUBLISH again (DUP), and the
    queue must not store it twice; PUBREL then completes the flow."""
    gw = gateway_factory(config_text='[[queues]]\nname = "once"\nfilter = "once/#"\n')
    props = {"session_expiry_interval": 600}
    producer = RawClient(gw.port, MQTT_5)
    assert producer.connect("qos2-producer", clean_start=False,
                            properties=props).reason_code == 0
    producer.send_packet(Publish("once/a", b"exactly once", 2, False, False, 7, {}))
    assert producer.expect(PubRec).reason_code == 0
    producer.close()
    gw.kill()
    gw.start()
    again = RawClient(gw.port, MQTT_5)
    clients.append(again)
    connack = again.connect("qos2-producer", clean_start=False, properties=props)
    assert connack.session_present
    again.send_packet(Publish("once/a", b"exactly once", 2, False, True, 7, {}))
    assert again.expect(PubRec).packet_id == 7
    again.send_packet(PubRel(7))
    assert again.expect(PubComp).reason_code == 0
    consumer = connected(gw.port, "once-consumer")
    clients.append(consumer)
    consumer.subscribe("$queue/once", qos=1)
    assert consumer.receive().payload == b"exactly once"
    consumer.expect_silence(0.5)
