"""A tiny MQTT 3.1.1 / 5.0 encoder and packet splitter for the load generator.

Only what the benchmark sends and reads: CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT
out; CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP in. It is deliberately independent of the
broker's own codec (`gateway.mqtt`), so a codec bug cannot hide behind a matching bug here.
No I/O in this module.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

V311 = 4
V5 = 5

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# MQTT 5 property identifiers used by the benchmark clients.
PROP_SESSION_EXPIRY = 0x11
PROP_RECEIVE_MAXIMUM = 0x21


class ProtocolError(Exception):
    """The broker sent something the benchmark client did not expect."""


def varint(n: int) -> bytes:
    """MQTT variable byte integer (remaining length, property length)."""
    out = bytearray()
    while True:
        digit, n = n & 0x7F, n >> 7
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect(client_id: str, *, version: int = V311, clean: bool = True, keepalive: int = 60,
            receive_maximum: int | None = None, session_expiry: int | None = None) -> bytes:
    """CONNECT; for MQTT 5 a persistent session needs `clean=False` and a session expiry."""
    flags = 0x02 if clean else 0x00
    body = mqtt_string("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == V5:
        props = b""
        if session_expiry is not None:
            props += bytes([PROP_SESSION_EXPIRY]) + struct.pack("!I", session_expiry)
        if receive_maximum is not None:
            props += bytes([PROP_RECEIVE_MAXIMUM]) + struct.pack("!H", receive_maximum)
        body += varint(len(props)) + props
    return packet(0x10, body + mqtt_string(client_id))


def subscribe(packet_id: int, topic_filter: str, qos: int, *, version: int = V311) -> bytes:
    body = struct.pack("!H", packet_id)
    if version == V5:
        body += b"\x00"
    return packet(0x82, body + mqtt_string(topic_filter) + bytes([qos]))


def publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0,
            version: int = V311) -> bytes:
    """One PUBLISH; the load clients use `PublishLayout` for batches instead."""
    body = mqtt_string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == V5:
        body += b"\x00"
    return packet(0x30 | (qos << 1), body + payload)


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


@dataclass(frozen=True, slots=True)
class Packet:
    """One received control packet: type, the low nibble of byte 0, and the body."""

    kind: int
    flags: int
    body: bytes


def split_packet(buf: bytes, pos: int) -> tuple[Packet, int] | None:
    """The packet starting at `pos` and the position after it, or None when incomplete."""
    n = len(buf)
    if pos + 2 > n:
        return None
    length, shift, i = 0, 0, pos + 1
    while True:
        if i >= n:
            return None
        digit = buf[i]
        length |= (digit & 0x7F) << shift
        i += 1
        if not digit & 0x80:
            break
        shift += 7
        if shift > 21:
            raise ProtocolError("malformed remaining length")
    end = i + length
    if end > n:
        return None
    first = buf[pos]
    return Packet(first >> 4, first & 0x0F, bytes(buf[i:end])), end


def read_varint(body: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        digit = body[pos]
        value |= (digit & 0x7F) << shift
        pos += 1
        if not digit & 0x80:
            return value, pos
        shift += 7


@dataclass(frozen=True, slots=True)
class Publish:
    topic: bytes
    qos: int
    dup: bool
    packet_id: int
    payload: bytes


def decode_publish(pkt: Packet, version: int) -> Publish:
    body = pkt.body
    (tlen,) = struct.unpack_from("!H", body, 0)
    pos = 2 + tlen
    qos = (pkt.flags >> 1) & 0x03
    pid = 0
    if qos:
        (pid,) = struct.unpack_from("!H", body, pos)
        pos += 2
    if version == V5:
        plen, pos = read_varint(body, pos)
        pos += plen
    return Publish(body[2:2 + tlen], qos, bool(pkt.flags & 0x08), pid, body[pos:])


def connack_code(pkt: Packet) -> int:
    """The CONNACK return code (3.1.1) or reason code (5.0)."""
    if pkt.kind != CONNACK or len(pkt.body) < 2:
        raise ProtocolError(f"expected CONNACK, got packet type {pkt.kind}")
    return pkt.body[1]


def suback_codes(pkt: Packet, version: int) -> bytes:
    if pkt.kind != SUBACK:
        raise ProtocolError(f"expected SUBACK, got packet type {pkt.kind}")
    pos = 2
    if version == V5:
        plen, pos = read_varint(pkt.body, pos)
        pos += plen
    return pkt.body[pos:]
