"""Byte-exact packets, one behaviour per test: what we put on the wire and read back from it.

Each byte string is written out by hand from the 3.1.1 and 5.0 specifications; a test encodes
the packet, compares with the bytes, and decodes the bytes back to the same packet.
"""

from __future__ import annotations

from gateway.mqtt.codec import Decoder, encode
from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_31,
    MQTT_311,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from tests.mqtt.helpers import h


def check(packet: Packet, version: int, wire: bytes) -> None:
    """`packet` encodes to exactly `wire`, and `wire` decodes to exactly `packet`."""
    assert encode(packet, version) == wire
    decoder = Decoder() if isinstance(packet, Connect) else Decoder(version=version)
    assert decoder.feed(wire) == [packet]


# ---------------------------------------------------------------------------------- CONNECT

def test_connect_v31_uses_protocol_name_mqisdp_level_3() -> None:
    packet = Connect("c1", protocol_level=MQTT_31, protocol_name="MQIsdp")
    check(packet, MQTT_311, h("10 10 0006 'MQIsdp' 03 02 003c 0002 'c1'"))


def test_connect_v31_decoder_then_speaks_311() -> None:
    decoder = Decoder()
    decoder.feed(h("10 10 0006 'MQIsdp' 03 02 003c 0002 'c1'"))
    assert decoder.version == MQTT_311


def test_connect_v311_minimal() -> None:
    check(Connect("c1"), MQTT_311, h("10 0e 0004 'MQTT' 04 02 003c 0002 'c1'"))


def test_connect_v311_empty_client_id_persistent_session() -> None:
    check(Connect("", clean_start=False, keepalive=0), MQTT_311,
          h("10 0c 0004 'MQTT' 04 00 0000 0000"))


def test_connect_v311_will_user_password_flags() -> None:
    # flags 0xEE: user name, password, will retain, will QoS 1, will, clean session
    packet = Connect("c", will=Will("w", b"bye", qos=1, retain=True), username="u",
                     password=b"p")
    check(packet, MQTT_311,
          h("10 1b 0004 'MQTT' 04 ee 003c 0001 'c' 0001 'w' 0003 'bye' 0001 'u' 0001 'p'"))


def test_connect_v5_with_session_expiry() -> None:
    packet = Connect("c1", protocol_level=MQTT_5, properties={"session_expiry_interval": 10})
    check(packet, MQTT_5, h("10 14 0004 'MQTT' 05 02 003c 05 11 0000000a 0002 'c1'"))


def test_connect_v5_will_properties_come_before_the_will_topic() -> None:
    will = Will("w", b"", properties={"will_delay_interval": 5})
    packet = Connect("c", protocol_level=MQTT_5, will=will)
    check(packet, MQTT_5,
          h("10 19 0004 'MQTT' 05 06 003c 00 0001 'c' 05 18 00000005 0001 'w' 0000"))


def test_connect_v5_password_without_user_name_is_allowed() -> None:
    packet = Connect("c", protocol_level=MQTT_5, password=b"pw")
    check(packet, MQTT_5, h("10 12 0004 'MQTT' 05 42 003c 00 0001 'c' 0002 'pw'"))


def test_connect_is_encoded_in_its_own_protocol_level() -> None:
    # The CONNECT states its version; `encode`'s version argument cannot contradict it.
    v5 = Connect("c1", protocol_level=MQTT_5, properties={"receive_maximum": 10})
    assert encode(v5) == encode(v5, MQTT_5)
    v4 = Connect("c1")
    assert encode(v4, MQTT_5) == encode(v4, MQTT_311)


# ---------------------------------------------------------------------------------- CONNACK

def test_connack_v311_accepted() -> None:
    check(Connack(), MQTT_311, h("20 02 00 00"))


def test_connack_v311_session_present() -> None:
    check(Connack(session_present=True), MQTT_311, h("20 02 01 00"))


def test_connack_v311_not_authorized() -> None:
    check(Connack(reason_code=5), MQTT_311, h("20 02 00 05"))


def test_connack_v5_always_has_a_property_length() -> None:
    check(Connack(), MQTT_5, h("20 03 00 00 00"))


def test_connack_v5_with_properties() -> None:
    packet = Connack(properties={"maximum_qos": 1, "topic_alias_maximum": 10,
                                 "assigned_client_identifier": "auto-1"})
    check(packet, MQTT_5, h("20 11 00 00 0e 24 01 22 000a 12 0006 'auto-1'"))


# ---------------------------------------------------------------------------------- PUBLISH

def test_publish_qos0_v311() -> None:
    check(Publish("a/b", b"hi"), MQTT_311, h("30 07 0003 'a/b' 'hi'"))


def test_publish_qos1_v311_has_a_packet_id() -> None:
    check(Publish("a/b", b"hi", qos=1, packet_id=10), MQTT_311,
          h("32 09 0003 'a/b' 000a 'hi'"))


def test_publish_qos2_dup_retain_v311() -> None:
    check(Publish("a/b", b"", qos=2, retain=True, dup=True, packet_id=0xFFFF), MQTT_311,
          h("3d 07 0003 'a/b' ffff"))


def test_publish_empty_payload_v311() -> None:
    check(Publish("t", b""), MQTT_311, h("30 03 0001 't'"))


def test_publish_qos0_v5_without_properties() -> None:
    check(Publish("a/b", b"hi"), MQTT_5, h("30 08 0003 'a/b' 00 'hi'"))


def test_publish_qos1_v5_with_properties() -> None:
    packet = Publish("a/b", b"hi", qos=1, packet_id=1,
                     properties={"message_expiry_interval": 60, "topic_alias": 1})
    check(packet, MQTT_5, h("32 12 0003 'a/b' 0001 08 02 0000003c 23 0001 'hi'"))


def test_publish_v5_with_several_subscription_identifiers() -> None:
    packet = Publish("t", b"", properties={"subscription_identifier": [1, 128, 268_435_455]})
    check(packet, MQTT_5, h("30 0e 0001 't' 0a 0b 01 0b 8001 0b ffffff7f"))


def test_publish_v5_user_properties_keep_their_order_and_repeats() -> None:
    packet = Publish("t", b"", properties={"user_property": [("k", "2"), ("k", "1")]})
    check(packet, MQTT_5, h("30 12 0001 't' 0e 26 0001 'k' 0001 '2' 26 0001 'k' 0001 '1'"))


def test_publish_v5_empty_topic_with_topic_alias() -> None:
    check(Publish("", b"x", properties={"topic_alias": 7}), MQTT_5,
          h("30 07 0000 03 23 0007 'x'"))


# ---------------------------------------------------------------------------------- acks

def test_puback_v311() -> None:
    check(PubAck(7), MQTT_311, h("40 02 0007"))


def test_puback_v5_success_uses_the_short_form() -> None:
    check(PubAck(7), MQTT_5, h("40 02 0007"))


def test_puback_v5_reason_without_properties() -> None:
    check(PubAck(7, 0x10), MQTT_5, h("40 03 0007 10"))


def test_puback_v5_reason_with_reason_string() -> None:
    check(PubAck(7, 0x87, {"reason_string": "no"}), MQTT_5, h("40 09 0007 87 05 1f 0002 'no'"))


def test_puback_v5_reason_and_empty_property_length_is_accepted() -> None:
    assert Decoder(version=MQTT_5).feed(h("40 04 0007 00 00")) == [PubAck(7)]


def test_pubrec_pubrel_pubcomp_first_bytes() -> None:
    check(PubRec(1), MQTT_311, h("50 02 0001"))
    check(PubRel(1), MQTT_311, h("62 02 0001"))
    check(PubComp(1), MQTT_311, h("70 02 0001"))


def test_pubrel_v5_packet_id_not_found() -> None:
    check(PubRel(1, 0x92), MQTT_5, h("62 03 0001 92"))


# ---------------------------------------------------------------------------------- SUBSCRIBE

def test_subscribe_v311_options_carry_only_qos() -> None:
    check(Subscribe(1, [Subscription("a", qos=1)]), MQTT_311, h("82 06 0001 0001 'a' 01"))


def test_subscribe_v5_option_bits() -> None:
    # QoS 1 (0x01) | no local (0x04) | retain as published (0x08) | retain handling 2 (0x20)
    sub = Subscription("a", qos=1, no_local=True, retain_as_published=True, retain_handling=2)
    check(Subscribe(1, [sub]), MQTT_5, h("82 07 0001 00 0001 'a' 2d"))


def test_subscribe_v5_each_option_bit_alone() -> None:
    cases = [
        (Subscription("a", qos=2), 0x02),
        (Subscription("a", no_local=True), 0x04),
        (Subscription("a", retain_as_published=True), 0x08),
        (Subscription("a", retain_handling=1), 0x10),
        (Subscription("a", retain_handling=2), 0x20),
    ]
    for sub, options in cases:
        check(Subscribe(1, [sub]), MQTT_5, h("82 07 0001 00 0001 'a'") + bytes((options,)))


def test_subscribe_v5_several_filters_and_subscription_identifier() -> None:
    packet = Subscribe(2, [Subscription("a/+"), Subscription("#", qos=2)],
                       {"subscription_identifier": [5]})
    check(packet, MQTT_5, h("82 0f 0002 02 0b 05 0003 'a/+' 00 0001 '#' 02"))


def test_suback_v311() -> None:
    check(Suback(1, [0, 1, 2, 0x80]), MQTT_311, h("90 06 0001 00 01 02 80"))


def test_suback_v5() -> None:
    check(Suback(1, [1, 0xA2]), MQTT_5, h("90 05 0001 00 01 a2"))


def test_unsubscribe_v311() -> None:
    check(Unsubscribe(3, ["a/b", "c"]), MQTT_311, h("a2 0a 0003 0003 'a/b' 0001 'c'"))


def test_unsubscribe_v5() -> None:
    check(Unsubscribe(3, ["c"]), MQTT_5, h("a2 06 0003 00 0001 'c'"))


def test_unsuback_v311_has_no_reason_codes() -> None:
    check(Unsuback(7), MQTT_311, h("b0 02 0007"))


def test_unsuback_v311_drops_reason_codes_it_cannot_express() -> None:
    assert encode(Unsuback(7, [0x11]), MQTT_311) == h("b0 02 0007")


def test_unsuback_v5_has_one_reason_code_per_filter() -> None:
    check(Unsuback(7, [0x00, 0x11]), MQTT_5, h("b0 05 0007 00 00 11"))


# ---------------------------------------------------------------------------------- the rest

def test_pingreq_pingresp() -> None:
    check(PingReq(), MQTT_311, h("c0 00"))
    check(PingResp(), MQTT_5, h("d0 00"))


def test_disconnect_v311() -> None:
    check(Disconnect(), MQTT_311, h("e0 00"))


def test_disconnect_v5_normal_without_reason_is_two_bytes() -> None:
    check(Disconnect(), MQTT_5, h("e0 00"))


def test_disconnect_v5_with_reason() -> None:
    check(Disconnect(0x04), MQTT_5, h("e0 01 04"))


def test_disconnect_v5_with_reason_and_properties() -> None:
    check(Disconnect(0x8B, {"reason_string": "bye"}), MQTT_5, h("e0 08 8b 06 1f 0003 'bye'"))


def test_disconnect_v5_reason_and_empty_property_length_is_accepted() -> None:
    assert Decoder(version=MQTT_5).feed(h("e0 02 00 00")) == [Disconnect()]


def test_auth_success_without_properties_is_two_bytes() -> None:
    check(Auth(), MQTT_5, h("f0 00"))


def test_auth_continue_with_method_and_data() -> None:
    packet = Auth(0x18, {"authentication_method": "SCRAM", "authentication_data": b"\x01"})
    check(packet, MQTT_5, h("f0 0e 18 0c 15 0005 'SCRAM' 16 0001 01"))


def test_auth_is_always_encoded_as_5_0() -> None:
    assert encode(Auth(0x19), MQTT_311) == h("f0 01 19")
