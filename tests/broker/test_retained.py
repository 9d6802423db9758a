"""Retained messages: set, replace, clear with an empty payload, delivered on subscribe; the 5.0
subscription options retain handling (0/1/2) and retain as published."""

from __future__ import annotations

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, Subscription
from tests.support.clients import connected
from tests.support.procs import GatewayProcess


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_retained_message_is_delivered_on_subscribe_with_retain_set(
        broker: GatewayProcess, tag: str, version: int) -> None:
    with connected(broker.port, f"{tag}-p", version) as pub:
        pub.publish(f"{tag}/t", b"kept", 1, retain=True)
    with connected(broker.port, f"{tag}-s", version) as sub:
        sub.subscribe(f"{tag}/t", qos=1)
        got = sub.receive()
        assert (got.topic, got.payload, got.retain, got.qos) == (f"{tag}/t", b"kept", True, 1)
        sub.expect_silence()


def test_retained_qos_is_downgraded_to_the_subscription(broker: GatewayProcess,
                                                        tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"q2", 2, retain=True)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(f"{tag}/t", qos=0)
        assert sub.receive().qos == 0


def test_retained_message_is_replaced_by_the_next_one(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"first", 1, retain=True)
        pub.publish(f"{tag}/t", b"second", 1, retain=True)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(f"{tag}/t")
        assert sub.receive().payload == b"second"
        sub.expect_silence()


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_empty_retained_payload_clears_and_is_still_forwarded(broker: GatewayProcess, tag: str,
                                                              version: int) -> None:
    with connected(broker.port, f"{tag}-p", version) as pub:
        pub.publish(f"{tag}/t", b"soon gone", 1, retain=True)
        with connected(broker.port, f"{tag}-live", version) as live:
            live.subscribe(f"{tag}/t")
            assert live.receive().payload == b"soon gone"
            pub.publish(f"{tag}/t", b"", 1, retain=True)
            cleared = live.receive()  # processed as normal for current subscribers
            assert (cleared.payload, cleared.retain) == (b"", False)
    with connected(broker.port, f"{tag}-s", version) as sub:
        sub.subscribe(f"{tag}/t", f"{tag}/#")
        sub.expect_silence()


def test_wildcard_subscription_gets_every_matching_retained_message(broker: GatewayProcess,
                                                                    tag: str) -> None:
    topics = [f"{tag}/a", f"{tag}/a/b", f"{tag}/c/b", f"{tag}/c/d/e"]
    with connected(broker.port, f"{tag}-p") as pub:
        for topic in topics:
            pub.publish(topic, topic.encode(), 1, retain=True)
    with connected(broker.port, f"{tag}-s1") as sub:
        sub.subscribe(f"{tag}/#")
        assert sorted(sub.receive().topic for _ in topics) == sorted(topics)
        sub.expect_silence()
    with connected(broker.port, f"{tag}-s2") as sub:
        sub.subscribe(f"{tag}/+/b")
        assert sorted(sub.receive().topic for _ in range(2)) == [f"{tag}/a/b", f"{tag}/c/b"]
        sub.expect_silence()


def test_live_retained_publish_is_forwarded_with_retain_cleared_in_311(
        broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s", MQTT_311) as sub, \
            connected(broker.port, f"{tag}-p", MQTT_311) as pub:
        sub.subscribe(f"{tag}/t")
        pub.publish(f"{tag}/t", b"live", 0, retain=True)
        assert sub.receive().retain is False  # [MQTT-3.3.1-9]


@pytest.mark.parametrize("as_published", [False, True])
def test_retain_as_published(broker: GatewayProcess, tag: str, as_published: bool) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(Subscription(f"{tag}/t", 0, retain_as_published=as_published))
        pub.publish(f"{tag}/t", b"live", 0, retain=True)
        assert sub.receive().retain is as_published
        pub.publish(f"{tag}/t", b"plain", 0, retain=False)
        assert sub.receive().retain is False


def test_retain_handling_0_sends_retained_at_every_subscribe(broker: GatewayProcess,
                                                             tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"r", 0, retain=True)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(Subscription(f"{tag}/t", 0, retain_handling=0))
        assert sub.receive().payload == b"r"
        sub.subscribe(Subscription(f"{tag}/t", 0, retain_handling=0), packet_id=2)
        assert sub.receive().payload == b"r"


def test_retain_handling_1_sends_retained_only_for_a_new_subscription(broker: GatewayProcess,
                                                                      tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"r", 0, retain=True)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(Subscription(f"{tag}/t", 0, retain_handling=1))
        assert sub.receive().payload == b"r"
        sub.subscribe(Subscription(f"{tag}/t", 0, retain_handling=1), packet_id=2)
        sub.expect_silence()


def test_retain_handling_2_never_sends_retained(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"r", 0, retain=True)
        with connected(broker.port, f"{tag}-s") as sub:
            sub.subscribe(Subscription(f"{tag}/t", 0, retain_handling=2))
            sub.expect_silence()
            pub.publish(f"{tag}/t", b"live", 0)  # the subscription itself works
            assert sub.receive().payload == b"live"


def test_retained_messages_are_not_sent_to_shared_subscriptions(broker: GatewayProcess,
                                                                tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"r", 0, retain=True)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(f"$share/g/{tag}/t")  # 5.0 §4.8.2: none on a new shared subscription
        sub.expect_silence()


def test_retained_messages_survive_a_restart(restartable: GatewayProcess, tag: str) -> None:
    with connected(restartable.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/a", b"A", 1, retain=True)
        pub.publish(f"{tag}/b", b"B", 1, retain=True)
        pub.publish(f"{tag}/b", b"", 1, retain=True)
    restartable.restart()
    with connected(restartable.port, f"{tag}-s") as sub:
        sub.subscribe(f"{tag}/#")
        got = sub.receive()
        assert (got.topic, got.payload, got.retain) == (f"{tag}/a", b"A", True)
        sub.expect_silence()
