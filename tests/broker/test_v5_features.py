"""MQTT 5.0 features end to end: topic aliases both ways, receive maximum as flow control,
message expiry, maximum packet size, properties forwarded unchanged, CONNACK properties."""

from __future__ import annotations

import time

from paho.mqtt.packettypes import PacketTypes

from gateway.mqtt.packets import PubAck, Publish
from gateway.mqtt.properties import Properties
from tests.support.clients import V5, PahoClient, RawClient, connected, paho_client, props
from tests.support.procs import GatewayProcess

# --------------------------------------------------------------------------- topic aliases


def test_client_to_broker_topic_alias(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/long/topic/name")
        pub.publish(f"{tag}/long/topic/name", b"1", properties={"topic_alias": 3})
        pub.publish("", b"2", properties={"topic_alias": 3})
        pub.publish("", b"3", 1, properties={"topic_alias": 3})
        got = [sub.receive() for _ in range(3)]
        assert [(g.topic, g.payload) for g in got] == [(f"{tag}/long/topic/name", p)
                                                       for p in (b"1", b"2", b"3")]
        assert all("topic_alias" not in g.properties for g in got)  # not forwarded


def test_client_topic_alias_can_be_remapped(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/+")
        pub.publish(f"{tag}/a", b"a", properties={"topic_alias": 1})
        pub.publish(f"{tag}/b", b"b", properties={"topic_alias": 1})
        pub.publish("", b"b again", properties={"topic_alias": 1})
        assert [sub.receive().topic for _ in range(3)] == [f"{tag}/a", f"{tag}/b", f"{tag}/b"]


def test_topic_alias_above_the_maximum_is_refused(broker: GatewayProcess, tag: str) -> None:
    with RawClient(broker.port) as pub:
        maximum = pub.connect(f"{tag}-p").properties["topic_alias_maximum"]
        assert maximum == 4  # the shared gateway's setting, announced in CONNACK
        pub.publish(f"{tag}/t", b"x", properties={"topic_alias": maximum + 1})
        pub.expect_disconnect(0x94)


def test_unknown_topic_alias_is_a_protocol_error(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish("", b"x", properties={"topic_alias": 2})
        pub.expect_disconnect(0x82)


def test_broker_to_client_topic_aliases(broker: GatewayProcess, tag: str) -> None:
    """With Topic Alias Maximum 2 the broker sets aliases for the first two topics, then
    sends only the alias; a third topic goes in full."""
    with connected(broker.port, f"{tag}-s", properties={"topic_alias_maximum": 2}) as sub, \
            connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/+")
        for topic in ("a", "b", "a", "c", "b", "c"):
            pub.publish(f"{tag}/{topic}", topic.encode())
        got = [sub.receive() for _ in range(6)]
        wire = [(g.topic, g.properties.get("topic_alias")) for g in got]
        alias_a, alias_b = wire[0][1], wire[1][1]
        assert alias_a and alias_b and alias_a != alias_b
        assert alias_a <= 2 and alias_b <= 2
        assert wire == [(f"{tag}/a", alias_a), (f"{tag}/b", alias_b), ("", alias_a),
                        (f"{tag}/c", None), ("", alias_b), (f"{tag}/c", None)]
        assert [g.payload for g in got] == [b"a", b"b", b"a", b"c", b"b", b"c"]


def test_no_topic_aliases_towards_a_client_that_did_not_ask(broker: GatewayProcess,
                                                            tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t")
        for _ in range(3):
            pub.publish(f"{tag}/t", b"x")
        for _ in range(3):
            got = sub.receive()
            assert got.topic == f"{tag}/t" and "topic_alias" not in got.properties


# --------------------------------------------------------------------------- receive maximum


def test_receive_maximum_limits_unacknowledged_deliveries(broker: GatewayProcess,
                                                          tag: str) -> None:
    with connected(broker.port, f"{tag}-s", properties={"receive_maximum": 2}) as sub, \
            connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t", qos=1)
        for i in range(5):
            pub.publish(f"{tag}/t", str(i).encode(), 1, packet_id=i + 1)
        first = [sub.receive(ack=False) for _ in range(2)]
        assert [p.payload for p in first] == [b"0", b"1"]
        sub.expect_silence()  # two in flight: the rest wait
        sub.send_packet(PubAck(first[0].packet_id))
        third = sub.receive(ack=False)
        assert third.payload == b"2"
        sub.expect_silence()
        sub.send_packet(PubAck(first[1].packet_id))
        sub.send_packet(PubAck(third.packet_id))
        assert [sub.receive().payload for _ in range(2)] == [b"3", b"4"]
        sub.expect_silence()


def test_receive_maximum_counts_qos2_until_pubcomp(broker: GatewayProcess, tag: str) -> None:
    from gateway.mqtt.packets import PubComp, PubRec, PubRel

    with connected(broker.port, f"{tag}-s", properties={"receive_maximum": 1}) as sub, \
            connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t", qos=2)
        for i in range(2):
            pub.publish(f"{tag}/t", str(i).encode(), 2, packet_id=i + 1)
        first = sub.receive(ack=False)
        sub.send_packet(PubRec(first.packet_id))
        sub.expect(PubRel)
        sub.expect_silence()  # still in flight until PUBCOMP
        sub.send_packet(PubComp(first.packet_id))
        assert sub.receive().payload == b"1"


def test_paho_manual_ack_receive_maximum(broker: GatewayProcess, tag: str) -> None:
    sub = PahoClient(broker.port, f"{tag}-s", V5, manual_ack=True)
    sub.connect(properties=props(PacketTypes.CONNECT, ReceiveMaximum=2))
    try:
        sub.subscribe(f"{tag}/t", 1)
        with paho_client(broker.port, f"{tag}-p") as pub:
            for i in range(4):
                pub.publish(f"{tag}/t", str(i), 1)
        held = sub.get_many(2)
        sub.expect_nothing()
        sub.client.ack(held[0].mid, 1)
        assert sub.get().payload == b"2"
        sub.expect_nothing()
    finally:
        sub.disconnect()


def test_inbound_receive_maximum_exceeded(tight_gateway: GatewayProcess, tag: str) -> None:
    with RawClient(tight_gateway.port) as pub:
        assert pub.connect(f"{tag}-p").properties["receive_maximum"] == 2
        for i in range(3):  # QoS 2 without PUBREL: three unacknowledged
            pub.send_packet(Publish(f"{tag}/t", b"x", 2, packet_id=i + 1))
        packets = pub.read_until_closed()
        assert packets[-1].reason_code == 0x93  # type: ignore[union-attr]


# --------------------------------------------------------------------------- message expiry


def test_expired_message_is_not_delivered_to_an_offline_subscriber(broker: GatewayProcess,
                                                                   tag: str) -> None:
    expiry: Properties = {"session_expiry_interval": 60}
    connected(broker.port, f"{tag}-s", properties=expiry).subscribe(f"{tag}/t", qos=1)
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/t", b"short", 1, properties={"message_expiry_interval": 1})
        pub.publish(f"{tag}/t", b"long", 1, properties={"message_expiry_interval": 30})
    time.sleep(1.2)  # outlive the short one
    with RawClient(broker.port) as back:
        assert back.connect(f"{tag}-s", clean_start=False, properties=expiry).session_present
        got = back.receive()
        assert got.payload == b"long"
        assert 20 <= got.properties["message_expiry_interval"] <= 29  # decremented
        back.expect_silence()
        back.disconnect(properties={"session_expiry_interval": 0})


def test_message_expiry_is_forwarded_to_an_online_subscriber(broker: GatewayProcess,
                                                             tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t")
        pub.publish(f"{tag}/t", b"x", properties={"message_expiry_interval": 100})
        assert sub.receive().properties["message_expiry_interval"] in (99, 100)


def test_expired_retained_message_is_not_delivered(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-p") as pub:
        pub.publish(f"{tag}/r", b"x", 1, retain=True, properties={"message_expiry_interval": 1})
    time.sleep(1.1)
    with connected(broker.port, f"{tag}-s") as sub:
        sub.subscribe(f"{tag}/r")
        sub.expect_silence()


# --------------------------------------------------------------------------- properties


def test_publish_properties_are_forwarded_unchanged(broker: GatewayProcess, tag: str) -> None:
    sent = {"payload_format_indicator": 1, "content_type": "text/plain; charset=utf-8",
            "response_topic": f"{tag}/reply", "correlation_data": b"\x00\x01corr",
            "user_property": [("b", "2"), ("a", "1"), ("a", "1 again")]}
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t")
        pub.publish(f"{tag}/t", "grüße".encode(), properties=sent)  # type: ignore[arg-type]
        assert sub.receive().properties == sent


def test_user_properties_reach_a_311_subscriber_as_a_plain_message(broker: GatewayProcess,
                                                                   tag: str) -> None:
    with connected(broker.port, f"{tag}-s", 4) as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t")
        pub.publish(f"{tag}/t", b"x", properties={"user_property": [("k", "v")]})
        assert sub.receive().payload == b"x"


def test_message_larger_than_the_clients_maximum_packet_size_is_not_sent(
        broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-s", properties={"maximum_packet_size": 200}) as sub, \
            connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t", qos=1)
        pub.publish(f"{tag}/t", b"x" * 200, 1)
        pub.publish(f"{tag}/t", b"small", 1)
        assert sub.receive().payload == b"small"  # the big one is dropped, not sent
        sub.expect_silence()


def test_connack_properties(broker: GatewayProcess) -> None:
    with RawClient(broker.port) as client:
        connack = client.connect("", properties={"request_response_information": 1})
        p = connack.properties
        assert connack.reason_code == 0
        assert p["assigned_client_identifier"]  # an empty id gets one in 5.0
        assert p["maximum_packet_size"] == 65536
        assert p["receive_maximum"] == 100
        assert p["shared_subscription_available"] == 1
        assert p["subscription_identifier_available"] == 1
        assert p["wildcard_subscription_available"] == 1
        assert p["response_information"]


def test_server_keep_alive_caps_the_client(tight_gateway: GatewayProcess, tag: str) -> None:
    with RawClient(tight_gateway.port) as client:  # max_keepalive = 30
        assert client.connect(f"{tag}-a", keepalive=600).properties["server_keep_alive"] == 30
    with RawClient(tight_gateway.port) as client:
        assert client.connect(f"{tag}-0", keepalive=0).properties["server_keep_alive"] == 30
    with RawClient(tight_gateway.port) as client:
        assert "server_keep_alive" not in client.connect(f"{tag}-b", keepalive=20).properties


def test_reason_string_only_when_problem_information_is_requested(broker: GatewayProcess,
                                                                  tag: str) -> None:
    with connected(broker.port, f"{tag}-a") as client:
        client.send(b"\x30\x05\x00\x03a/+")
        assert client.expect_disconnect(0x90).properties.get("reason_string")
    with connected(broker.port, f"{tag}-b",
                   properties={"request_problem_information": 0}) as client:
        client.send(b"\x30\x05\x00\x03a/+")
        assert "reason_string" not in client.expect_disconnect(0x90).properties


def test_paho_v5_request_response_round_trip(broker: GatewayProcess, tag: str) -> None:
    with paho_client(broker.port, f"{tag}-svc") as service, \
            paho_client(broker.port, f"{tag}-cli") as client:
        service.subscribe(f"{tag}/req", 1)
        client.subscribe(f"{tag}/resp", 1)
        client.publish(f"{tag}/req", "ping", 1, properties=props(
            PacketTypes.PUBLISH, ResponseTopic=f"{tag}/resp", CorrelationData=b"42"))
        request = service.get()
        assert request.properties.ResponseTopic == f"{tag}/resp"  # type: ignore[union-attr]
        service.publish(request.properties.ResponseTopic, "pong", 1,  # type: ignore[union-attr]
                        properties=props(PacketTypes.PUBLISH,
                                         CorrelationData=request.properties.CorrelationData))  # type: ignore[union-attr]
        reply = client.get()
        assert (reply.payload, reply.properties.CorrelationData) == (b"pong", b"42")  # type: ignore[union-attr]

