"""Wire primitives: variable byte integers, two/four-byte integers, UTF-8 strings, binary data.

Readers take `(buf, pos, end)` and return `(value, new_pos)`; they raise `MQTTError`
(malformed packet) on truncation or invalid data and never any other exception.
"""

from __future__ import annotations

from gateway.mqtt.reasons import malformed

MAX_VARINT = 268_435_455


def varint(value: int) -> bytes:
    """Encode a variable byte integer (1 to 4 bytes)."""
    if not 0 <= value <= MAX_VARINT:
        raise ValueError(f"variable byte integer out of range: {value}")
    if value < 128:
        return bytes((value,))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    for i in range(4):
        if pos + i >= end:
            raise malformed("truncated variable byte integer")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if i and byte == 0:
                raise malformed("variable byte integer not in minimal form")
            return value, pos + i + 1
        shift += 7
    raise malformed("variable byte integer longer than 4 bytes")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def read_u16(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise malformed("truncated two-byte integer")
    return (buf[pos] << 8) | buf[pos + 1], pos + 2


def read_u32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise malformed("truncated four-byte integer")
    return int.from_bytes(buf[pos:pos + 4], "big"), pos + 4


def utf8(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0xFFFF:
        raise ValueError("UTF-8 string longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("binary data longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def read_binary(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise malformed("truncated length prefix")
    n = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    if pos + n > end:
        raise malformed("string or binary data exceeds the packet")
    return bytes(buf[pos:pos + n]), pos + n


def read_utf8(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, pos = read_binary(buf, pos, end)
    return decode_utf8(raw), pos


def decode_utf8(raw: bytes) -> str:
    """Decode an MQTT UTF-8 string: well-formed, no surrogates, no U+0000 [MQTT-1.5.4]."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise malformed("invalid UTF-8 string") from None
    if "\x00" in text:
        raise malformed("UTF-8 string contains U+0000")
    return text
