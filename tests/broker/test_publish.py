"""PUBLISH at QoS 0, 1 and 2: the exact packet flows, downgrades, order, DUP and exactly-once."""

from __future__ import annotations

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
)
from gateway.mqtt.properties import Properties
from tests.support.clients import V5, V311, PahoClient, RawClient, connected, paho_client
from tests.support.procs import GatewayProcess


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_qos0_publish_is_delivered_without_acknowledgement(broker: GatewayProcess, tag: str,
                                                           version: int) -> None:
    with connected(broker.port, f"{tag}-s", version) as sub, \
            connected(broker.port, f"{tag}-p", version) as pub:
        sub.subscribe(f"{tag}/t", qos=0)
        assert pub.publish(f"{tag}/t", b"zero", 0) is None
        got = sub.receive()
        assert (got.topic, got.payload, got.qos, got.packet_id, got.dup, got.retain) == (
            f"{tag}/t", b"zero", 0, 0, False, False)
        pub.expect_silence(0.1)  # no acknowledgement of any kind at QoS 0


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_qos1_flow_publish_puback_both_ways(broker: GatewayProcess, tag: str,
                                            version: int) -> None:
    with connected(broker.port, f"{tag}-s", version) as sub, \
            connected(broker.port, f"{tag}-p", version) as pub:
        sub.subscribe(f"{tag}/t", qos=1)
        ack = pub.publish(f"{tag}/t", b"one", 1, packet_id=17)
        assert isinstance(ack, PubAck) and ack.packet_id == 17 and ack.reason_code == 0
        got = sub.expect(Publish)
        assert (got.payload, got.qos, got.dup) == (b"one", 1, False) and got.packet_id
        sub.send_packet(PubAck(got.packet_id))
        sub.expect_silence(0.2)  # acknowledged: not sent again


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_qos2_flow_publish_pubrec_pubrel_pubcomp_both_ways(broker: GatewayProcess, tag: str,
                                                           version: int) -> None:
    with connected(broker.port, f"{tag}-s", version) as sub, \
            connected(broker.port, f"{tag}-p", version) as pub:
        sub.subscribe(f"{tag}/t", qos=2)
        pub.send_packet(Publish(f"{tag}/t", b"two", 2, packet_id=300))
        assert pub.expect(PubRec).packet_id == 300
        got = sub.expect(Publish)
        assert (got.payload, got.qos) == (b"two", 2)
        sub.send_packet(PubRec(got.packet_id))
        assert sub.expect(PubRel).packet_id == got.packet_id
        sub.send_packet(PubComp(got.packet_id))
        pub.send_packet(PubRel(300))
        assert pub.expect(PubComp).packet_id == 300
        sub.expect_silence(0.1)
        pub.expect_silence(0.1)


def test_qos2_duplicate_publish_before_pubrel_is_delivered_once(broker: GatewayProcess,
                                                                tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t", qos=2)
        pub.send_packet(Publish(f"{tag}/t", b"once", 2, packet_id=5))
        pub.expect(PubRec)
        pub.send_packet(Publish(f"{tag}/t", b"once", 2, dup=True, packet_id=5))
        assert pub.expect(PubRec).packet_id == 5
        pub.send_packet(PubRel(5))
        pub.expect(PubComp)
        assert sub.receive().payload == b"once"
        sub.expect_silence()


@pytest.mark.parametrize(("sub_qos", "pub_qos", "expected"),
                         [(0, 2, 0), (1, 2, 1), (2, 1, 1), (2, 0, 0), (1, 0, 0)])
def test_delivery_qos_is_the_minimum_of_subscription_and_publish(
        broker: GatewayProcess, tag: str, sub_qos: int, pub_qos: int, expected: int) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        assert sub.subscribe(f"{tag}/t", qos=sub_qos).reason_codes == [sub_qos]
        pub.publish(f"{tag}/t", b"x", pub_qos)
        assert sub.receive().qos == expected


def test_v5_puback_says_no_matching_subscribers(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        ack = pub.publish(f"{tag}/nobody", b"x", 1)
        assert isinstance(ack, PubAck) and ack.reason_code == 0x10


@pytest.mark.parametrize("protocol", [V311, V5], ids=["3.1.1", "5.0"])
def test_paho_messages_arrive_in_order_at_each_qos(broker: GatewayProcess, tag: str,
                                                   protocol: MQTTProtocolVersion) -> None:
    with paho_client(broker.port, f"{tag}-s", protocol) as sub, \
            paho_client(broker.port, f"{tag}-p", protocol) as pub:
        sub.subscribe(f"{tag}/#", 2)
        sent = []
        for qos in (0, 1, 2):
            for i in range(20):
                payload = f"{qos}-{i}".encode()
                pub.client.publish(f"{tag}/q{qos}", payload, qos)
                sent.append((qos, payload))
        got = [(m.qos, m.payload) for m in sub.get_many(len(sent))]
        for qos in (0, 1, 2):  # in order per topic and QoS [MQTT-4.6.0-6]
            assert [p for q, p in got if q == qos] == [p for q, p in sent if q == qos]


def test_unacknowledged_qos1_is_resent_with_dup_after_reconnect(broker: GatewayProcess,
                                                               tag: str) -> None:
    sub = connected(broker.port, f"{tag}-s", MQTT_5,
                    properties={"session_expiry_interval": 60})
    sub.subscribe(f"{tag}/t", qos=1)
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"again", 1)
    first = sub.receive(ack=False)
    assert not first.dup
    sub.close()  # no PUBACK
    with RawClient(broker.port) as sub2:
        assert sub2.connect(f"{tag}-s", clean_start=False,
                            properties={"session_expiry_interval": 60}).session_present
        again = sub2.receive()
        assert (again.payload, again.packet_id, again.dup) == (b"again", first.packet_id, True)
        sub2.expect_silence()
        sub2.disconnect(properties={"session_expiry_interval": 0})


def test_qos2_exactly_once_when_subscriber_drops_before_pubcomp(broker: GatewayProcess,
                                                                tag: str) -> None:
    """PUBREC sent, PUBREL received, connection lost before PUBCOMP: on resume the broker
    sends PUBREL again, never the PUBLISH [MQTT-4.4.0-1]."""
    expiry: Properties = {"session_expiry_interval": 60}
    sub = connected(broker.port, f"{tag}-s", properties=expiry)
    sub.subscribe(f"{tag}/t", qos=2)
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"exactly once", 2)
    got = sub.receive(ack=False)
    sub.send_packet(PubRec(got.packet_id))
    assert sub.expect(PubRel).packet_id == got.packet_id
    sub.close()
    with RawClient(broker.port) as sub2:
        assert sub2.connect(f"{tag}-s", clean_start=False, properties=expiry).session_present
        assert sub2.expect(PubRel).packet_id == got.packet_id
        sub2.send_packet(PubComp(got.packet_id))
        sub2.expect_silence()
        sub2.disconnect(properties={"session_expiry_interval": 0})


def test_qos2_exactly_once_when_subscriber_drops_right_after_pubrec(broker: GatewayProcess,
                                                                   tag: str) -> None:
    expiry: Properties = {"session_expiry_interval": 60}
    sub = connected(broker.port, f"{tag}-s", properties=expiry)
    sub.subscribe(f"{tag}/t", qos=2)
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"exactly once", 2)
    got = sub.receive(ack=False)
    sub.send_packet(PubRec(got.packet_id))
    sub.close()  # perhaps before the broker's PUBREL arrived
    with RawClient(broker.port) as sub2:
        assert sub2.connect(f"{tag}-s", clean_start=False, properties=expiry).session_present
        assert sub2.expect(PubRel).packet_id == got.packet_id
        sub2.send_packet(PubComp(got.packet_id))
        sub2.expect_silence()


def test_qos2_exactly_once_when_publisher_resends_after_reconnect(broker: GatewayProcess,
                                                                  tag: str) -> None:
    """The publisher lost the PUBREC, reconnects with its session and resends PUBLISH with
    DUP: the broker acknowledges it again but routes it only once."""
    expiry: Properties = {"session_expiry_interval": 60}
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(f"{tag}/t", qos=2)
        pub = connected(broker.port, f"{tag}-p", properties=expiry)
        pub.send_packet(Publish(f"{tag}/t", b"exactly once", 2, packet_id=9))
        pub.expect(PubRec)
        pub.close()
        with RawClient(broker.port) as pub2:
            assert pub2.connect(f"{tag}-p", clean_start=False, properties=expiry).session_present
            pub2.send_packet(Publish(f"{tag}/t", b"exactly once", 2, dup=True, packet_id=9))
            assert pub2.expect(PubRec).packet_id == 9
            pub2.send_packet(PubRel(9))
            assert pub2.expect(PubComp).packet_id == 9
            pub2.disconnect(properties={"session_expiry_interval": 0})
        assert sub.receive().payload == b"exactly once"
        sub.expect_silence()


def test_qos2_exactly_once_with_paho_subscriber_reconnecting(broker: GatewayProcess,
                                                             tag: str) -> None:
    """A real 3.1.1 client with a persistent session gets every QoS 2 message exactly once
    across a drop and reconnect."""
    sub = PahoClient(broker.port, f"{tag}-s", V311, clean=False)
    sub.connect()
    sub.subscribe(f"{tag}/t", 2)
    with paho_client(broker.port, f"{tag}-p", V311) as pub:
        for i in range(5):
            pub.publish(f"{tag}/t", f"m{i}", 2)
        first = [m.payload for m in sub.get_many(5)]
        sub.drop()
        for i in range(5, 10):
            pub.publish(f"{tag}/t", f"m{i}", 2)
    sub2 = PahoClient(broker.port, f"{tag}-s", V311, clean=False)
    assert sub2.connect().session_present
    rest = [m.payload for m in sub2.get_many(5)]
    sub2.expect_nothing()
    assert first + rest == [f"m{i}".encode() for i in range(10)]
    sub2.disconnect()
