"""`codec.publish_head`, the PUBLISH encoder every outbound message takes (the broker queues the
head and the payload without joining them), gives byte for byte the packet of the generic
layout: fixed header, remaining length, topic, packet id, properties, payload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mqtt import properties as props
from gateway.mqtt import wire
from gateway.mqtt.codec import Decoder, encode, publish_head
from gateway.mqtt.packets import MQTT_5, MQTT_311, Publish
from tests.mqtt.strategies import FAST, publishes


def reference(p: Publish, version: int) -> bytes:
    """The layout of MQTT 3.1.1 §3.3 / 5.0 §3.3, built from the wire primitives."""
    body = wire.utf8(p.topic)
    if p.qos:
        body += wire.u16(p.packet_id)
    if version == MQTT_5:
        body += props.encode(p.properties)
    body += p.payload
    first = 0x30 | (p.qos << 1) | (0x08 if p.dup else 0) | (0x01 if p.retain else 0)
    return bytes((first,)) + wire.varint(len(body)) + body


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
@given(data=st.data(), size=st.sampled_from([0, 1, 100, 120, 130, 1024, 16_370, 16_400,
                                             70_000]))
@FAST
def test_publish_head_and_payload_are_the_generic_packet(version: int, data: st.DataObject,
                                                         size: int) -> None:
    p = data.draw(publishes(version))
    p.payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    block = props.encode(p.properties) if version == MQTT_5 else b""
    packet = publish_head(p.topic, len(p.payload), p.qos, p.retain, p.dup, p.packet_id,
                          block) + p.payload
    assert packet == reference(p, version) == encode(p, version)
    decoder = Decoder(version=version)
    assert decoder.feed(packet) == [p]


def test_a_plain_puback_is_decoded_by_the_short_path_as_by_the_general_one() -> None:
    decoder = Decoder(version=MQTT_311)
    # three PUBACKs, one split over two reads, then a PUBACK with a 5.0 reason code: the
    # general path
    assert [a.packet_id for a in decoder.feed(b"\x40\x02\x00\x01\x40\x02\x01\x00\x40")] == [1, 256]
    assert [a.packet_id for a in decoder.feed(b"\x02\xff\xff")] == [0xFFFF]
    v5 = Decoder(version=MQTT_5)
    got = v5.feed(b"\x40\x03\x00\x07\x10\x40\x02\x00\x08")
    assert [(a.packet_id, a.reason_code) for a in got] == [(7, 0x10), (8, 0)]
