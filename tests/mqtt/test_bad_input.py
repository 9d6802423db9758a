"""Bad input: each problem raises `MQTTError` carrying the 5.0 reason code the broker reports.

Packets are written as hex with quoted ASCII runs (see `h`); the comment on each names the
rule broken. Truncation is not an error: a partial packet waits for the rest.
"""

from __future__ import annotations

import pytest

from gateway.mqtt.codec import Decoder, UnsupportedProtocol, encode
from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Connect,
    Disconnect,
    PingReq,
    Publish,
    Subscribe,
    Subscription,
)
from gateway.mqtt.reasons import MQTTError, Reason
from tests.mqtt.helpers import h

MALFORMED = Reason.MALFORMED_PACKET
PROTOCOL = Reason.PROTOCOL_ERROR


def reason_of(data: bytes, version: int = MQTT_311, max_packet_size: int | None = None) -> Reason:
    """The reason code `data` is refused with, fed whole and fed one byte at a time."""
    reasons = []
    for chunks in ([data], [data[i:i + 1] for i in range(len(data))]):
        decoder = (Decoder(version=version) if max_packet_size is None
                   else Decoder(max_packet_size, version))
        with pytest.raises(MQTTError) as err:
            for chunk in chunks:
                decoder.feed(chunk)
        reasons.append(err.value.reason)
    assert reasons[0] == reasons[1]
    return reasons[0]


# ---------------------------------------------------------------------------------- truncation

@pytest.mark.parametrize("packet", [
    Connect("client", will=None, username="u", password=b"p"),
    Publish("a/b", b"payload", qos=1, packet_id=3),
    Subscribe(1, [Subscription("a/#", qos=2)]),
    Disconnect(),
])
def test_truncated_packet_stays_pending_until_complete(packet: Connect | Publish | Subscribe
                                                       | Disconnect) -> None:
    wire = encode(packet, MQTT_311)
    for cut in range(len(wire)):
        decoder = Decoder(version=0 if isinstance(packet, Connect) else MQTT_311)
        assert decoder.feed(wire[:cut]) == []
        assert decoder.feed(wire[cut:]) == [packet]


def test_truncated_large_publish_waits_for_its_body() -> None:
    wire = encode(Publish("t", bytes(100_000)), MQTT_5)
    decoder = Decoder(version=MQTT_5)
    assert decoder.feed(wire[:5]) == []
    assert decoder.feed(wire[5:-1]) == []
    assert decoder.feed(wire[-1:]) == [Publish("t", bytes(100_000))]


# ---------------------------------------------------------------------------------- size

def test_oversized_packet_is_refused_from_the_header_alone() -> None:
    # Only the fixed header: PUBLISH, remaining length 16383. No body byte has arrived.
    decoder = Decoder(max_packet_size=1024, version=MQTT_5)
    with pytest.raises(MQTTError) as err:
        decoder.feed(h("30 ff7f"))
    assert err.value.reason == Reason.PACKET_TOO_LARGE


def test_oversized_packet_is_refused_before_connect() -> None:
    # The size check comes first: a huge first packet is not buffered while we wait for it.
    assert reason_of(h("10 ffffff7f"), version=0, max_packet_size=4096) == \
        Reason.PACKET_TOO_LARGE


def test_packet_of_exactly_the_maximum_size_is_accepted() -> None:
    wire = encode(Publish("t", b"x" * 10), MQTT_311)
    assert Decoder(max_packet_size=len(wire), version=MQTT_311).feed(wire) == \
        [Publish("t", b"x" * 10)]
    assert reason_of(wire, max_packet_size=len(wire) - 1) == Reason.PACKET_TOO_LARGE


# ---------------------------------------------------------------------------------- fixed header

@pytest.mark.parametrize("first_byte", [
    0x11,  # CONNECT with a reserved flag
    0x80,  # SUBSCRIBE must have flags 0010
    0x60,  # PUBREL must have flags 0010
    0xA0,  # UNSUBSCRIBE must have flags 0010
    0x42,  # PUBACK flags must be 0000
    0xC1,  # PINGREQ
    0xE8,  # DISCONNECT
])
def test_reserved_flags_set_are_malformed(first_byte: int) -> None:
    version = 0 if first_byte >> 4 == 1 else MQTT_311
    assert reason_of(bytes((first_byte, 2)) + h("0001"), version) == MALFORMED


def test_reserved_packet_type_0_is_malformed() -> None:
    assert reason_of(h("00 00")) == MALFORMED


def test_auth_does_not_exist_before_5_0() -> None:
    assert reason_of(h("f0 00"), MQTT_311) == PROTOCOL


# ---------------------------------------------------------------------------------- CONNECT

def test_packet_before_connect_is_a_protocol_error() -> None:
    assert reason_of(h("c0 00"), version=0) == PROTOCOL
    assert reason_of(h("30 03 0001 't'"), version=0) == PROTOCOL


@pytest.mark.parametrize("connect", [
    h("10 0e 0004 'MQTT' 06 02 003c 0002 'c1'"),      # level 6
    h("10 0e 0004 'MQTT' 03 02 003c 0002 'c1'"),      # level 3 is MQIsdp's
    h("10 10 0006 'MQIsdp' 04 02 003c 0002 'c1'"),    # MQIsdp with level 4
    h("10 0e 0004 'MQTT' 00 02 003c 0002 'c1'"),      # level 0
])
def test_unknown_protocol_level_is_unsupported_protocol(connect: bytes) -> None:
    with pytest.raises(UnsupportedProtocol) as err:
        Decoder().feed(connect)
    assert err.value.reason == Reason.UNSUPPORTED_PROTOCOL_VERSION
    assert int(err.value.reason) == 0x84
    assert isinstance(err.value, MQTTError)


def test_unknown_protocol_name_is_a_protocol_error() -> None:
    assert reason_of(h("10 0e 0004 'MQTX' 04 02 003c 0002 'c1'"), version=0) == PROTOCOL


@pytest.mark.parametrize("connect", [
    h("10 0e 0004 'MQTT' 04 03 003c 0002 'c1'"),   # reserved flag bit 0
    h("10 0e 0004 'MQTT' 04 1a 003c 0002 'c1'"),   # will QoS 3 (0x18)
    h("10 0e 0004 'MQTT' 04 22 003c 0002 'c1'"),   # will retain without the will flag
    h("10 0e 0004 'MQTT' 04 42 003c 0002 'c1'"),   # 3.1.1: password without user name
    h("10 0f 0004 'MQTT' 04 02 003c 0002 'c1' 00"),  # a byte after the payload
    h("10 0c 0004 'MQTT' 04 02 003c 0002"),        # client id longer than the packet
    h("10 05 0004 'MQT'"),                         # protocol name cut short
])
def test_malformed_connect(connect: bytes) -> None:
    assert reason_of(connect, version=0) == MALFORMED


def test_connect_v5_property_not_allowed_in_the_will() -> None:
    # will properties with session expiry interval (0x11), which only CONNECT may carry
    connect = h("10 19 0004 'MQTT' 05 06 003c 00 0001 'c' 05 11 00000005 0001 'w' 0000")
    assert reason_of(connect, version=0) == MALFORMED


# ---------------------------------------------------------------------------------- PUBLISH

@pytest.mark.parametrize("topic", [
    b"a\xffb",          # invalid UTF-8
    b"a\x00b",          # U+0000
    b"a\xed\xa0\x80",   # encoded surrogate
])
@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_publish_topic_not_mqtt_utf8_is_malformed(topic: bytes, version: int) -> None:
    body = len(topic).to_bytes(2, "big") + topic + (b"\x00" if version == MQTT_5 else b"")
    assert reason_of(bytes((0x30, len(body))) + body, version) == MALFORMED


@pytest.mark.parametrize("topic", ["a/#", "#", "a/+/b", "+", "a+"])
@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_wildcard_in_publish_topic_is_topic_name_invalid(topic: str, version: int) -> None:
    wire = encode(Publish(topic, b"x"), version)
    assert int(reason_of(wire, version)) == 0x90  # TOPIC_NAME_INVALID


def test_publish_empty_topic_v311_is_a_protocol_error() -> None:
    assert reason_of(h("30 03 0000 'x'")) == PROTOCOL


def test_publish_empty_topic_v5_without_topic_alias_is_a_protocol_error() -> None:
    assert reason_of(h("30 04 0000 00 'x'"), MQTT_5) == PROTOCOL


def test_publish_qos_3_is_malformed() -> None:
    assert reason_of(h("36 05 0001 't' 0001")) == MALFORMED


def test_publish_dup_at_qos_0_is_malformed() -> None:
    assert reason_of(h("38 03 0001 't'")) == MALFORMED


def test_publish_packet_id_0_is_malformed() -> None:
    assert reason_of(h("32 05 0001 't' 0000")) == MALFORMED


def test_publish_qos1_without_packet_id_is_malformed() -> None:
    assert reason_of(h("32 03 0001 't'")) == MALFORMED


# ---------------------------------------------------------------------------------- properties

def test_duplicate_property_is_a_protocol_error() -> None:
    # message expiry interval twice
    assert reason_of(h("30 0e 0001 't' 0a 02 00000001 02 00000002"), MQTT_5) == PROTOCOL


def test_repeatable_properties_may_repeat() -> None:
    packet = Decoder(version=MQTT_5).feed(h("30 08 0001 't' 04 0b 01 0b 02"))
    assert packet == [Publish("t", b"", properties={"subscription_identifier": [1, 2]})]


def test_property_not_allowed_in_the_packet_is_malformed() -> None:
    # session expiry interval (0x11) in a PUBLISH
    assert reason_of(h("30 09 0001 't' 05 11 00000001"), MQTT_5) == MALFORMED


def test_unknown_property_is_malformed() -> None:
    assert reason_of(h("30 06 0001 't' 02 7f 00"), MQTT_5) == MALFORMED


def test_property_length_beyond_the_packet_is_malformed() -> None:
    assert reason_of(h("30 06 0001 't' 09 23 0001"), MQTT_5) == MALFORMED


def test_property_value_cut_by_the_property_length_is_malformed() -> None:
    # topic alias needs two bytes; the property block holds one (the payload follows)
    assert reason_of(h("30 07 0001 't' 02 23 00 01"), MQTT_5) == MALFORMED


@pytest.mark.parametrize(("name", "wire_property"), [
    ("payload_format_indicator", "01 02"),
    ("subscription_identifier", "0b 00"),
])
def test_publish_property_out_of_range_is_a_protocol_error(name: str,
                                                           wire_property: str) -> None:
    prop = h(wire_property)
    body = h("0001 't'") + bytes((len(prop),)) + prop
    assert reason_of(bytes((0x30, len(body))) + body, MQTT_5) == PROTOCOL, name


def test_topic_alias_0_is_decoded_for_the_broker_to_refuse() -> None:
    # The broker answers 0x94 (Topic Alias invalid), as for an alias above its maximum.
    packet = Decoder(version=MQTT_5).feed(h("30 07 0001 't' 03 23 0000"))
    assert packet == [Publish("t", b"", properties={"topic_alias": 0})]


@pytest.mark.parametrize(("name", "wire_property"), [
    ("maximum_qos", "24 02"),
    ("retain_available", "25 02"),
    ("receive_maximum", "21 0000"),
    ("maximum_packet_size", "27 00000000"),
])
def test_connack_property_out_of_range_is_a_protocol_error(name: str,
                                                           wire_property: str) -> None:
    prop = h(wire_property)
    body = h("00 00") + bytes((len(prop),)) + prop
    assert reason_of(bytes((0x20, len(body))) + body, MQTT_5) == PROTOCOL, name


@pytest.mark.parametrize(("name", "wire_property"), [
    ("request_problem_information", "17 02"),
    ("receive_maximum", "21 0000"),
    ("maximum_packet_size", "27 00000000"),
])
def test_connect_property_out_of_range_is_a_protocol_error(name: str,
                                                           wire_property: str) -> None:
    prop = h(wire_property)
    body = h("0004 'MQTT' 05 02 003c") + bytes((len(prop),)) + prop + h("0001 'c'")
    assert reason_of(bytes((0x10, len(body))) + body, 0) == PROTOCOL, name


# ---------------------------------------------------------------------------------- acks

def test_ack_packet_id_0_is_malformed() -> None:
    assert reason_of(h("40 02 0000")) == MALFORMED


def test_ack_v311_longer_than_two_bytes_is_malformed() -> None:
    assert reason_of(h("40 03 0001 00")) == MALFORMED


def test_ack_v5_invalid_reason_is_malformed() -> None:
    assert reason_of(h("40 03 0001 05"), MQTT_5) == MALFORMED
    assert reason_of(h("62 03 0001 10"), MQTT_5) == MALFORMED  # PUBREL knows 0x00, 0x92


def test_connack_v5_bytes_after_the_properties_are_malformed() -> None:
    assert reason_of(h("20 04 00 00 00 ff"), MQTT_5) == MALFORMED


def test_connack_invalid_acknowledge_flags_are_malformed() -> None:
    assert reason_of(h("20 02 02 00")) == MALFORMED


def test_disconnect_v311_with_a_body_is_malformed() -> None:
    assert reason_of(h("e0 01 00")) == MALFORMED


def test_disconnect_v5_invalid_reason_is_malformed() -> None:
    assert reason_of(h("e0 01 01"), MQTT_5) == MALFORMED


def test_disconnect_v5_bytes_after_the_properties_are_malformed() -> None:
    assert reason_of(h("e0 03 00 00 ff"), MQTT_5) == MALFORMED


def test_auth_v5_invalid_reason_is_malformed() -> None:
    assert reason_of(h("f0 01 87"), MQTT_5) == MALFORMED


# ---------------------------------------------------------------------------------- SUBSCRIBE

@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_subscribe_without_filters_is_a_protocol_error(version: int) -> None:
    wire = h("82 02 0001") if version == MQTT_311 else h("82 03 0001 00")
    assert reason_of(wire, version) == PROTOCOL


def test_unsubscribe_without_filters_is_a_protocol_error() -> None:
    assert reason_of(h("a2 02 0001")) == PROTOCOL


def test_subscribe_filter_without_options_is_malformed() -> None:
    assert reason_of(h("82 05 0001 0001 'a'")) == MALFORMED


def test_subscribe_v311_qos_3_is_malformed() -> None:
    assert reason_of(h("82 06 0001 0001 'a' 03")) == MALFORMED


def test_subscribe_v5_qos_3_is_a_protocol_error() -> None:
    # 5.0 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"
    assert reason_of(h("82 07 0001 00 0001 'a' 03"), MQTT_5) == PROTOCOL


@pytest.mark.parametrize(("version", "options"), [
    (MQTT_311, 0x04), (MQTT_311, 0x80), (MQTT_5, 0x40), (MQTT_5, 0x80),
])
def test_subscribe_reserved_option_bits_are_malformed(version: int, options: int) -> None:
    wire = h("82 06 0001 0001 'a'") if version == MQTT_311 else h("82 07 0001 00 0001 'a'")
    assert reason_of(wire + bytes((options,)), version) == MALFORMED


def test_subscribe_v5_retain_handling_3_is_a_protocol_error() -> None:
    assert reason_of(h("82 07 0001 00 0001 'a' 30"), MQTT_5) == PROTOCOL


def test_subscribe_v5_two_subscription_identifiers_are_a_protocol_error() -> None:
    assert reason_of(h("82 0b 0001 04 0b 01 0b 02 0001 'a' 00"), MQTT_5) == PROTOCOL


def test_subscribe_v5_subscription_identifier_0_is_a_protocol_error() -> None:
    assert reason_of(h("82 09 0001 02 0b 00 0001 'a' 00"), MQTT_5) == PROTOCOL


def test_subscribe_packet_id_0_is_malformed() -> None:
    assert reason_of(h("82 06 0000 0001 'a' 00")) == MALFORMED


def test_suback_without_reason_codes_is_malformed() -> None:
    assert reason_of(h("90 02 0001")) == MALFORMED


def test_unsuback_v5_without_reason_codes_is_malformed() -> None:
    assert reason_of(h("b0 03 0001 00"), MQTT_5) == MALFORMED


# ---------------------------------------------------------------------------------- recovery

def test_good_packets_before_a_bad_one_are_returned_and_the_error_waits() -> None:
    decoder = Decoder(version=MQTT_311)
    assert decoder.feed(h("c0 00") + h("36 00")) == [PingReq()]
    assert decoder.error is not None and decoder.error.reason == MALFORMED
    with pytest.raises(MQTTError):
        decoder.feed(b"")
