"""Wire primitives: variable byte integers at every boundary, and MQTT UTF-8 strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mqtt import wire
from gateway.mqtt.codec import Decoder
from gateway.mqtt.reasons import MQTTError, Reason
from tests.mqtt.strategies import FAST, MQTT_CHARS

VARINTS = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (16_383, "ff7f"),
    (16_384, "808001"),
    (2_097_151, "ffff7f"),
    (2_097_152, "80808001"),
    (268_435_455, "ffffff7f"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), VARINTS)
def test_varint_boundaries(value: int, hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    assert wire.varint(value) == data
    assert wire.read_varint(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize("value", [-1, 268_435_456])
def test_varint_out_of_range_cannot_be_encoded(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        wire.varint(value)


@pytest.mark.parametrize("hex_bytes", ["8000", "ff00", "808000", "ff8000", "80808000"])
def test_varint_not_in_minimal_form_is_malformed(hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(MQTTError) as err:
        wire.read_varint(data, 0, len(data))
    assert err.value.reason == Reason.MALFORMED_PACKET


def test_varint_longer_than_four_bytes_is_malformed() -> None:
    data = bytes.fromhex("8080808001")
    with pytest.raises(MQTTError, match="longer than 4 bytes"):
        wire.read_varint(data, 0, len(data))


@pytest.mark.parametrize("hex_bytes", ["", "80", "ffff", "ffffff"])
def test_truncated_varint_is_malformed(hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(MQTTError, match="truncated"):
        wire.read_varint(data, 0, len(data))


@FAST
@given(st.integers(0, wire.MAX_VARINT))
def test_varint_round_trip(value: int) -> None:
    data = wire.varint(value)
    assert len(data) == 1 + (value >= 128) + (value >= 16_384) + (value >= 2_097_152)
    assert wire.read_varint(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize(("hex_header", "length"), [
    ("c000", 0), ("30" + "7f", 127), ("30" + "8001", 128), ("30" + "ff7f", 16_383),
    ("30" + "808001", 16_384), ("30" + "ffff7f", 2_097_151), ("30" + "80808001", 2_097_152),
    ("30" + "ffffff7f", 268_435_455),
])
def test_remaining_length_boundaries_are_read_from_the_header(hex_header: str,
                                                              length: int) -> None:
    # A limit one byte short of the packet refuses it; the error names the full size.
    header = bytes.fromhex(hex_header)
    total = len(header) + length
    with pytest.raises(MQTTError, match=f"packet of {total} bytes") as err:
        Decoder(max_packet_size=total - 1, version=4).feed(header)
    assert err.value.reason == Reason.PACKET_TOO_LARGE


@pytest.mark.parametrize("hex_packet", ["c08000", "c0808000", "c080808000", "e08000"])
def test_remaining_length_not_in_minimal_form_is_malformed(hex_packet: str) -> None:
    with pytest.raises(MQTTError) as err:
        Decoder(version=4).feed(bytes.fromhex(hex_packet))
    assert err.value.reason == Reason.MALFORMED_PACKET


def test_remaining_length_longer_than_four_bytes_is_malformed() -> None:
    with pytest.raises(MQTTError, match="longer than 4 bytes") as err:
        Decoder(version=4).feed(bytes.fromhex("3080808080"))
    assert err.value.reason == Reason.MALFORMED_PACKET


# ---------------------------------------------------------------------------------- strings

def test_utf8_string_is_length_prefixed() -> None:
    assert wire.utf8("a/é") == b"\x00\x04a/\xc3\xa9"
    assert wire.read_utf8(b"\x00\x04a/\xc3\xa9", 0, 6) == ("a/é", 6)


def test_utf8_keeps_a_byte_order_mark() -> None:
    # 0xEF 0xBB 0xBF is U+FEFF and must not be stripped [MQTT-1.5.4-3].
    assert wire.read_utf8(b"\x00\x04\xef\xbb\xbfa", 0, 6) == ("\ufeffa", 6)


@pytest.mark.parametrize("raw", [
    b"\xff",              # never valid in UTF-8
    b"\xc3",              # truncated sequence
    b"\xc0\xaf",          # overlong '/'
    b"\xed\xa0\x80",      # encoded surrogate U+D800
    b"a\x00b",            # U+0000
])
def test_invalid_mqtt_utf8_is_malformed(raw: bytes) -> None:
    data = len(raw).to_bytes(2, "big") + raw
    with pytest.raises(MQTTError) as err:
        wire.read_utf8(data, 0, len(data))
    assert err.value.reason == Reason.MALFORMED_PACKET


def test_string_longer_than_the_packet_is_malformed() -> None:
    with pytest.raises(MQTTError, match="exceeds the packet"):
        wire.read_utf8(b"\x00\x05abc", 0, 5)


def test_string_over_65535_bytes_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="65535"):
        wire.utf8("x" * 65_536)
    with pytest.raises(ValueError, match="65535"):
        wire.binary(b"x" * 65_536)


@FAST
@given(st.text(MQTT_CHARS, max_size=40))
def test_utf8_round_trip(text: str) -> None:
    data = wire.utf8(text)
    assert wire.read_utf8(data, 0, len(data)) == (text, len(data))
