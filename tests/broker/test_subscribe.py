"""SUBSCRIBE/UNSUBSCRIBE: wildcards, `$`-topics, overlapping subscriptions, shared
subscriptions, subscription identifiers and no local."""

from __future__ import annotations

import contextlib

import pytest

from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess


@pytest.mark.parametrize(("topic_filter", "matching", "not_matching"), [
    ("{t}/+/x", ["{t}/a/x", "{t}//x"], ["{t}/a/b/x", "{t}/x"]),
    ("{t}/#", ["{t}", "{t}/a", "{t}/a/b/c"], ["{t}x/a"]),
    ("{t}/a/+", ["{t}/a/b", "{t}/a/"], ["{t}/a", "{t}/a/b/c"]),
])
def test_wildcards_match_per_level(broker: GatewayProcess, tag: str, topic_filter: str,
                                   matching: list[str], not_matching: list[str]) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(topic_filter.format(t=tag))
        for topic in not_matching + matching:
            pub.publish(topic.format(t=tag), b"x")
        assert [sub.receive().topic for _ in matching] == [t.format(t=tag) for t in matching]
        sub.expect_silence(0.1)


def test_dollar_topics_are_not_matched_by_leading_wildcards(broker: GatewayProcess,
                                                            tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as wild, \
            connected(broker.port, f"{tag}-d") as dollar, \
            connected(broker.port, f"{tag}-p") as pub:
        # '#' also brings every retained message on the broker, the retained $SYS ones not
        wild.subscribe(Subscription("#", 0), Subscription("+/x", 0))
        dollar.subscribe("$SYS/broker/uptime")
        pub.publish(f"{tag}/x", b"plain")
        assert dollar.receive(3.0).topic == "$SYS/broker/uptime"
        topics = []
        with contextlib.suppress(TimeoutError):
            while True:  # until a 1.2 s gap, during which $SYS was published once more
                topics.append(wild.receive(1.2).topic)
        assert f"{tag}/x" in topics
        assert [t for t in topics if t.startswith("$")] == []


def test_sys_topics_need_an_explicit_sys_filter(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(Subscription("+/broker/uptime", 0), Subscription("$SYS/broker/uptime", 0))
        got = sub.receive(3.0)
        assert got.topic == "$SYS/broker/uptime"


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(broker: GatewayProcess,
                                                                   tag: str,
                                                                   version: int) -> None:
    with connected(broker.port, f"{tag}-s", version) as sub, \
            connected(broker.port, f"{tag}-p", version) as pub:
        sub.subscribe(Subscription(f"{tag}/#", 0), Subscription(f"{tag}/+", 1),
                      Subscription(f"{tag}/a", 0))
        pub.publish(f"{tag}/a", b"once", 2)
        got = sub.receive()
        assert (got.payload, got.qos) == (b"once", 1)
        sub.expect_silence()


def test_subscribing_again_replaces_the_subscription(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        assert sub.subscribe(f"{tag}/t", qos=2).reason_codes == [2]
        assert sub.subscribe(f"{tag}/t", qos=0, packet_id=2).reason_codes == [0]
        pub.publish(f"{tag}/t", b"x", 2)
        assert sub.receive().qos == 0
        sub.expect_silence()


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_unsubscribe_stops_delivery(broker: GatewayProcess, tag: str, version: int) -> None:
    with connected(broker.port, f"{tag}-s", version) as sub, \
            connected(broker.port, f"{tag}-p", version) as pub:
        sub.subscribe(f"{tag}/t", f"{tag}/u")
        sub.send_packet(Unsubscribe(7, [f"{tag}/t", f"{tag}/never"]))
        unsuback = sub.expect(Unsuback)
        assert unsuback.packet_id == 7
        if version == MQTT_5:
            assert unsuback.reason_codes == [0x00, 0x11]
        pub.publish(f"{tag}/t", b"gone")
        pub.publish(f"{tag}/u", b"kept")
        assert sub.receive().payload == b"kept"
        sub.expect_silence(0.1)


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_invalid_filters_are_refused_one_by_one(broker: GatewayProcess, tag: str,
                                                version: int) -> None:
    with connected(broker.port, f"{tag}-s", version) as sub:
        codes = sub.subscribe(f"{tag}/ok", f"{tag}/a#", f"{tag}/+x", "$share/g", qos=1)
        bad = 0x8F if version == MQTT_5 else 0x80
        assert codes.reason_codes == [1, bad, bad, bad]


def test_shared_subscription_gives_each_message_to_one_member(broker: GatewayProcess,
                                                              tag: str) -> None:
    members = [connected(broker.port, f"{tag}-m{i}") for i in range(3)]
    try:
        for m in members:
            m.subscribe(f"$share/g/{tag}/+", qos=1)
        with connected(broker.port, f"{tag}-plain") as plain, \
                connected(broker.port, f"{tag}-p") as pub:
            plain.subscribe(f"{tag}/+", qos=1)
            for i in range(30):
                pub.publish(f"{tag}/{i % 3}", str(i).encode(), 1, packet_id=i + 1)
            assert sorted(int(plain.receive().payload) for _ in range(30)) == list(range(30))
        got: list[list[int]] = [[] for _ in members]
        for m, bucket in zip(members, got, strict=True):
            while True:
                try:
                    bucket.append(int(m.receive(0.3).payload))
                except TimeoutError:
                    break
        assert sorted(n for bucket in got for n in bucket) == list(range(30))  # exactly once
        assert all(got), f"a member received nothing: {[len(b) for b in got]}"
    finally:
        for m in members:
            m.close()


def test_two_shared_groups_each_get_every_message(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-a") as a, connected(broker.port, f"{tag}-b") as b, \
            connected(broker.port, f"{tag}-p") as pub:
        a.subscribe(f"$share/one/{tag}/t")
        b.subscribe(f"$share/two/{tag}/t")
        pub.publish(f"{tag}/t", b"both")
        assert a.receive().payload == b"both"
        assert b.receive().payload == b"both"


def test_shared_subscription_with_no_local_is_a_protocol_error(broker: GatewayProcess,
                                                               tag: str) -> None:
    with RawClient(broker.port) as client:
        client.connect(f"{tag}-s")
        client.send_packet(Subscribe(1, [Subscription(f"$share/g/{tag}/t", 0, no_local=True)]))
        client.expect_disconnect(0x82)


def test_subscription_identifiers_come_with_each_matching_subscription(
        broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/+", properties={"subscription_identifier": [5]})
        sub.subscribe(f"{tag}/#", packet_id=2, properties={"subscription_identifier": [700]})
        sub.subscribe(f"{tag}/a", packet_id=3)  # no identifier
        pub.publish(f"{tag}/a", b"x")
        got = sub.receive()
        assert sorted(got.properties["subscription_identifier"]) == [5, 700]
        sub.expect_silence(0.1)
        pub.publish(f"{tag}/a/b", b"y")
        assert sub.receive().properties["subscription_identifier"] == [700]


def test_subscription_identifier_on_retained_delivery(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/r", b"kept", retain=True)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(f"{tag}/r", properties={"subscription_identifier": [42]})
        assert sub.receive().properties["subscription_identifier"] == [42]


def test_no_local_keeps_a_clients_own_messages_from_it(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-me") as me, connected(broker.port, f"{tag}-o") as other:
        me.subscribe(Subscription(f"{tag}/t", 0, no_local=True), Subscription(f"{tag}/u", 0))
        other.subscribe(f"{tag}/t")
        me.publish(f"{tag}/t", b"mine")
        assert other.receive().payload == b"mine"
        me.expect_silence()
        me.publish(f"{tag}/u", b"echo")  # without no local a client hears itself
        assert me.receive().payload == b"echo"
        other.publish(f"{tag}/t", b"theirs")
        assert me.receive().payload == b"theirs"
