"""h11's rule for the decoder: we either parse it, or raise MQTTError, never any other error.

Random bytes, random bodies behind a well-formed fixed header, and valid streams with bytes
flipped, inserted, deleted or cut are fed whole and one byte at a time, at versions 0, 4 and 5;
both ways must give the same packets and the same reason code.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.mqtt.codec import Decoder, encode
from gateway.mqtt.packets import MQTT_5, MQTT_311, Packet
from gateway.mqtt.reasons import MQTTError, Reason
from gateway.mqtt.wire import varint
from tests.mqtt.strategies import FAST, THOROUGH, after_connect, connects

DECODER_VERSIONS = (0, MQTT_311, MQTT_5)

Outcome = tuple[list[Packet], Reason | None]


def run(data: bytes, version: int, chunk: int | None = None,
        max_packet_size: int = 4096) -> Outcome:
    """Feed `data` (whole, or `chunk` bytes at a time); the packets and the error, if any.

    Any exception other than MQTTError propagates and fails the test.
    """
    decoder = Decoder(max_packet_size, version)
    packets: list[Packet] = []
    step = chunk or max(len(data), 1)
    try:
        for i in range(0, len(data), step):
            packets += decoder.feed(data[i:i + step])
    except MQTTError as err:
        assert isinstance(err.reason, Reason)
        assert str(err)  # the message renders
        return packets, err.reason
    if decoder.error is not None:  # good packets came back first; the fault waits
        return packets, decoder.error.reason
    return packets, None


def check_parse_or_mqtt_error(data: bytes, version: int) -> None:
    whole, whole_error = run(data, version)
    bytewise, bytewise_error = run(data, version, chunk=1)
    assert bytewise_error == whole_error
    assert bytewise == whole


# ---------------------------------------------------------------------------------- strategies

first_bytes = st.one_of(st.integers(0, 255), st.sampled_from(
    [0x10, 0x20, 0x30, 0x32, 0x34, 0x3B, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xA2, 0xB0, 0xC0,
     0xD0, 0xE0, 0xF0]))


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """A well-formed fixed header around a random body, so the body parsers see the bytes."""
    body = draw(st.binary(max_size=64))
    return bytes((draw(first_bytes),)) + varint(len(body)) + body


@st.composite
def valid_streams(draw: st.DrawFn, version: int) -> bytes:
    packets: list[Packet] = [draw(connects(version))]
    packets += draw(st.lists(after_connect(version), max_size=4))
    return b"".join(encode(p, version) for p in packets)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes flipped, replaced, inserted or deleted, or cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        if action == "flip":
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            out[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x23, 0x2B]))
        elif action == "insert":
            out.insert(i, draw(st.integers(0, 255)))
        elif action == "delete":
            del out[i]
        else:
            del out[i:]
    return bytes(out)


# ---------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("version", DECODER_VERSIONS)
@THOROUGH
@given(data=st.binary(max_size=128))
@example(data=b"\x10\xff\xff\xff\xff")
@example(data=b"\x30\x80\x00")
def test_random_bytes(version: int, data: bytes) -> None:
    check_parse_or_mqtt_error(data, version)


@pytest.mark.parametrize("version", DECODER_VERSIONS)
@THOROUGH
@given(frames=st.lists(framed(), min_size=1, max_size=4))
def test_random_bodies_behind_valid_headers(version: int, frames: list[bytes]) -> None:
    check_parse_or_mqtt_error(b"".join(frames), version)


@pytest.mark.parametrize("stream_version", [MQTT_311, MQTT_5])
@FAST
@given(data=st.data())
def test_mutated_valid_streams(stream_version: int, data: st.DataObject) -> None:
    stream = data.draw(valid_streams(stream_version))
    broken = data.draw(mutated(stream))
    check_parse_or_mqtt_error(broken, 0)


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
@FAST
@given(data=st.data())
def test_mutated_packets_after_connect(version: int, data: st.DataObject) -> None:
    packet = data.draw(after_connect(version))
    broken = data.draw(mutated(encode(packet, version)))
    check_parse_or_mqtt_error(broken, version)
    # and the same bytes as seen by a decoder of the other version
    check_parse_or_mqtt_error(broken, MQTT_5 if version == MQTT_311 else MQTT_311)


@pytest.mark.parametrize("stream_version", [MQTT_311, MQTT_5])
@FAST
@given(data=st.data())
def test_valid_stream_cut_anywhere_is_pending_not_an_error(stream_version: int,
                                                           data: st.DataObject) -> None:
    stream = data.draw(valid_streams(stream_version))
    cut = data.draw(st.integers(0, len(stream) - 1))
    decoder = Decoder()
    head = decoder.feed(stream[:cut])
    tail = decoder.feed(stream[cut:])
    assert head + tail == Decoder().feed(stream)
    assert tail  # the packet that was cut arrives with the rest
