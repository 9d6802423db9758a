"""Sessions: clean session / clean start, session expiry, and persistent sessions whose
subscriptions and queued QoS 1/2 messages survive a broker restart and a SIGKILL."""

from __future__ import annotations

import time

import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes

from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Unsuback,
    Unsubscribe,
)
from gateway.mqtt.properties import Properties
from tests.support.clients import (
    V5,
    V311,
    PahoClient,
    RawClient,
    connected,
    paho_client,
    props,
)
from tests.support.procs import GatewayProcess

EXPIRY: Properties = {"session_expiry_interval": 300}


def test_311_clean_session_keeps_nothing(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag, MQTT_311) as first:
        first.subscribe(f"{tag}/t", qos=1)
    with RawClient(broker.port, MQTT_311) as again, \
            connected(broker.port, f"{tag}-p", MQTT_311) as pub:
        assert again.connect(tag, clean_start=True).session_present is False
        pub.publish(f"{tag}/t", b"x", 1)
        again.expect_silence()


def test_311_persistent_session_keeps_subscriptions_and_queues_qos1(broker: GatewayProcess,
                                                                   tag: str) -> None:
    with RawClient(broker.port, MQTT_311) as first:
        assert first.connect(tag, clean_start=False).session_present is False
        first.subscribe(f"{tag}/t", qos=1)
        first.disconnect()
    with connected(broker.port, f"{tag}-p", MQTT_311) as pub:
        pub.publish(f"{tag}/t", b"q0 is not kept", 0)
        for i in range(3):
            pub.publish(f"{tag}/t", f"kept {i}".encode(), 1, packet_id=i + 1)
    with RawClient(broker.port, MQTT_311) as back:
        assert back.connect(tag, clean_start=False).session_present is True
        assert [back.receive().payload for _ in range(3)] == [b"kept 0", b"kept 1", b"kept 2"]
        back.expect_silence()
    with RawClient(broker.port, MQTT_311) as done:
        done.connect(tag, clean_start=True)  # end the session


def test_v5_session_without_expiry_ends_with_the_connection(broker: GatewayProcess,
                                                            tag: str) -> None:
    with connected(broker.port, tag) as first:
        first.subscribe(f"{tag}/t")
    with RawClient(broker.port) as again:
        assert again.connect(tag, clean_start=False).session_present is False


def test_v5_clean_start_discards_the_stored_session(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag, properties=EXPIRY) as first:
        first.subscribe(f"{tag}/t")
    with RawClient(broker.port) as again:
        assert again.connect(tag, clean_start=True, properties=EXPIRY).session_present is False
        again.disconnect(properties={"session_expiry_interval": 0})


def test_v5_session_resumes_within_its_expiry(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag, properties={"session_expiry_interval": 5}) as first:
        first.subscribe(f"{tag}/t", qos=1)
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"waiting", 1)
    with RawClient(broker.port) as back:
        assert back.connect(tag, clean_start=False).session_present
        assert back.receive().payload == b"waiting"


def test_v5_session_is_gone_after_its_expiry(broker: GatewayProcess, tag: str) -> None:
    connected(broker.port, tag, properties={"session_expiry_interval": 1}).disconnect()
    time.sleep(1.2)  # the interval itself is what is tested
    with RawClient(broker.port) as back:
        assert back.connect(tag, clean_start=False).session_present is False


def test_v5_disconnect_can_shorten_the_session_expiry(broker: GatewayProcess, tag: str) -> None:
    first = connected(broker.port, tag, properties=EXPIRY)
    first.subscribe(f"{tag}/t")
    first.disconnect(properties={"session_expiry_interval": 0})
    with RawClient(broker.port) as back:
        assert back.connect(tag, clean_start=False).session_present is False


def test_v5_disconnect_cannot_set_expiry_after_zero(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag) as client:
        client.send(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x0a")  # DISCONNECT, expiry 10
        client.expect_disconnect(0x82)


def _queue_for_offline(gw: GatewayProcess, tag: str, protocol: MQTTProtocolVersion, n: int) -> None:
    """A persistent subscriber goes offline; a producer gets PUBACK for `n` QoS 1 messages."""
    if protocol == V5:
        sub = PahoClient(gw.port, f"{tag}-s", V5)
        sub.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
    else:
        sub = PahoClient(gw.port, f"{tag}-s", V311, clean=False)
        sub.connect()
    sub.subscribe(f"{tag}/t", 1)
    sub.disconnect()
    with paho_client(gw.port, f"{tag}-p", V311) as pub:
        for i in range(n):
            pub.publish(f"{tag}/t", f"m{i}", 1)  # returns once PUBACKed


def _expect_queued(gw: GatewayProcess, tag: str, protocol: MQTTProtocolVersion, n: int) -> None:
    version = MQTT_5 if protocol == V5 else MQTT_311
    with RawClient(gw.port, version) as back:
        assert back.connect(f"{tag}-s", clean_start=False).session_present
        assert [back.receive().payload for _ in range(n)] == [f"m{i}".encode()
                                                              for i in range(n)]
        back.expect_silence()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["3.1.1", "5.0"])
def test_persistent_session_survives_a_restart(restartable: GatewayProcess, tag: str,
                                               protocol: MQTTProtocolVersion) -> None:
    _queue_for_offline(restartable, tag, protocol, 5)
    restartable.restart()
    _expect_queued(restartable, tag, protocol, 5)


@pytest.mark.parametrize("protocol", [V311, V5], ids=["3.1.1", "5.0"])
def test_acknowledged_messages_survive_sigkill(restartable: GatewayProcess, tag: str,
                                               protocol: MQTTProtocolVersion) -> None:
    _queue_for_offline(restartable, tag, protocol, 20)
    restartable.kill()
    restartable.start()
    _expect_queued(restartable, tag, protocol, 20)


def test_subscriptions_survive_a_restart(restartable: GatewayProcess, tag: str) -> None:
    """Messages published after the restart still reach the offline persistent subscriber."""
    with RawClient(restartable.port, MQTT_311) as sub:
        sub.connect(f"{tag}-s", clean_start=False)
        sub.subscribe(f"{tag}/+", qos=1)
        sub.disconnect()
    restartable.restart()
    with connected(restartable.port, f"{tag}-p", MQTT_311) as pub:
        pub.publish(f"{tag}/after", b"after restart", 1)
    restartable.kill()
    restartable.start()
    with RawClient(restartable.port, MQTT_311) as back:
        assert back.connect(f"{tag}-s", clean_start=False).session_present
        got = back.receive()
        assert (got.topic, got.payload) == (f"{tag}/after", b"after restart")
        back.expect_silence()
        pub2 = connected(restartable.port, f"{tag}-p2", MQTT_311)
        pub2.publish(f"{tag}/live", b"live", 1)
        assert back.receive().payload == b"live"
        pub2.close()


def test_subscription_details_survive_a_restart(restartable: GatewayProcess, tag: str) -> None:
    """Identifiers, shared groups and unsubscribes are stored with the session."""
    expiry: Properties = {"session_expiry_interval": 600}
    sub = connected(restartable.port, f"{tag}-s", properties=expiry)
    sub.subscribe(f"{tag}/a/+", qos=1, properties={"subscription_identifier": [7]})
    sub.subscribe(f"$share/g/{tag}/b", qos=1, packet_id=2)
    sub.subscribe(f"{tag}/c", qos=1, packet_id=3)
    sub.send_packet(Unsubscribe(4, [f"{tag}/c"]))
    sub.expect(Unsuback)
    sub.disconnect()
    restartable.restart()
    with connected(restartable.port, f"{tag}-p") as pub:
        for topic in ("a/x", "b", "c"):
            pub.publish(f"{tag}/{topic}", topic.encode(), 1)
    with RawClient(restartable.port) as back:
        assert back.connect(f"{tag}-s", clean_start=False, properties=expiry).session_present
        first, second = back.receive(), back.receive()
        assert (first.topic, first.properties.get("subscription_identifier")) == (
            f"{tag}/a/x", [7])
        assert second.topic == f"{tag}/b"
        back.expect_silence()  # not c: unsubscribed before the restart
        back.disconnect(properties={"session_expiry_interval": 0})


def test_unacknowledged_in_flight_message_is_redelivered_after_sigkill(
        restartable: GatewayProcess, tag: str) -> None:
    sub = connected(restartable.port, f"{tag}-s", MQTT_311, clean_start=False)
    sub.subscribe(f"{tag}/t", qos=1)
    with connected(restartable.port, f"{tag}-p", MQTT_311) as pub:
        pub.publish(f"{tag}/t", b"in flight", 1)
    assert sub.receive(ack=False).payload == b"in flight"
    restartable.kill()
    sub.close()
    restartable.start()
    with RawClient(restartable.port, MQTT_311) as back:
        assert back.connect(f"{tag}-s", clean_start=False).session_present
        got = back.expect(Publish)
        assert got.payload == b"in flight"
        back.send_packet(PubAck(got.packet_id))
        back.expect_silence()
    restartable.restart()  # the acknowledged message is gone from the store too
    with RawClient(restartable.port, MQTT_311) as again:
        assert again.connect(f"{tag}-s", clean_start=False).session_present
        again.expect_silence()


def test_released_qos2_message_is_not_sent_again_after_a_restart(restartable: GatewayProcess,
                                                                tag: str) -> None:
    """Exactly once across a broker restart: the subscriber sent PUBREC and got PUBREL, then
    the connection and the broker went away before PUBCOMP. The broker must resume with PUBREL
    for the same packet id, never a new PUBLISH (5.0 §4.3.3: no PUBLISH once PUBREL was sent)."""
    expiry: Properties = {"session_expiry_interval": 600}
    sub = connected(restartable.port, f"{tag}-s", properties=expiry)
    sub.subscribe(f"{tag}/t", qos=2)
    with connected(restartable.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"exactly once", 2)
    got = sub.receive(ack=False)
    sub.send_packet(PubRec(got.packet_id))
    assert sub.expect(PubRel).packet_id == got.packet_id
    sub.close()
    restartable.restart()
    with RawClient(restartable.port) as back:
        assert back.connect(f"{tag}-s", clean_start=False, properties=expiry).session_present
        again = back.read()
        assert again == PubRel(got.packet_id), f"after PUBREL the broker sent {again!r}"
        back.send_packet(PubComp(got.packet_id))
        back.expect_silence()
        back.disconnect(properties={"session_expiry_interval": 0})
