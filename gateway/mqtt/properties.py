"""MQTT 5.0 properties: a typed dict per packet, and their wire encoding.

Properties travel as a plain dict keyed by the names below; an absent property is an absent key,
so a packet without properties costs one empty dict.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypedDict, cast

from gateway.mqtt import wire
from gateway.mqtt.reasons import malformed, protocol_error


class Properties(TypedDict, total=False):
    payload_format_indicator: int
    message_expiry_interval: int
    content_type: str
    response_topic: str
    correlation_data: bytes
    subscription_identifier: list[int]
    session_expiry_interval: int
    assigned_client_identifier: str
    server_keep_alive: int
    authentication_method: str
    authentication_data: bytes
    request_problem_information: int
    will_delay_interval: int
    request_response_information: int
    response_information: str
    server_reference: str
    reason_string: str
    receive_maximum: int
    topic_alias_maximum: int
    topic_alias: int
    maximum_qos: int
    retain_available: int
    user_property: list[tuple[str, str]]
    maximum_packet_size: int
    wildcard_subscription_available: int
    subscription_identifier_available: int
    shared_subscription_available: int


class Kind(IntEnum):
    BYTE = 1
    U16 = 2
    U32 = 3
    VARINT = 4
    UTF8 = 5
    BINARY = 6
    PAIR = 7


class Where(IntEnum):
    """Packet types (fixed-header type numbers), plus WILL for the will properties."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    DISCONNECT = 14
    AUTH = 15
    WILL = 99


_ACKS = (Where.PUBACK, Where.PUBREC, Where.PUBREL, Where.PUBCOMP)
_ALL_RS = (Where.CONNACK, *_ACKS, Where.SUBACK, Where.UNSUBACK, Where.DISCONNECT, Where.AUTH)
_ALL_UP = (Where.CONNECT, Where.CONNACK, Where.PUBLISH, Where.WILL, *_ACKS, Where.SUBSCRIBE,
           Where.SUBACK, Where.UNSUBSCRIBE, Where.UNSUBACK, Where.DISCONNECT, Where.AUTH)

# id: (name, kind, packets it may appear in) — MQTT 5.0 §2.2.2.2
TABLE: dict[int, tuple[str, Kind, tuple[Where, ...]]] = {
    0x01: ("payload_format_indicator", Kind.BYTE, (Where.PUBLISH, Where.WILL)),
    0x02: ("message_expiry_interval", Kind.U32, (Where.PUBLISH, Where.WILL)),
    0x03: ("content_type", Kind.UTF8, (Where.PUBLISH, Where.WILL)),
    0x08: ("response_topic", Kind.UTF8, (Where.PUBLISH, Where.WILL)),
    0x09: ("correlation_data", Kind.BINARY, (Where.PUBLISH, Where.WILL)),
    0x0B: ("subscription_identifier", Kind.VARINT, (Where.PUBLISH, Where.SUBSCRIBE)),
    0x11: ("session_expiry_interval", Kind.U32, (Where.CONNECT, Where.CONNACK, Where.DISCONNECT)),
    0x12: ("assigned_client_identifier", Kind.UTF8, (Where.CONNACK,)),
    0x13: ("server_keep_alive", Kind.U16, (Where.CONNACK,)),
    0x15: ("authentication_method", Kind.UTF8, (Where.CONNECT, Where.CONNACK, Where.AUTH)),
    0x16: ("authentication_data", Kind.BINARY, (Where.CONNECT, Where.CONNACK, Where.AUTH)),
    0x17: ("request_problem_information", Kind.BYTE, (Where.CONNECT,)),
    0x18: ("will_delay_interval", Kind.U32, (Where.WILL,)),
    0x19: ("request_response_information", Kind.BYTE, (Where.CONNECT,)),
    0x1A: ("response_information", Kind.UTF8, (Where.CONNACK,)),
    0x1C: ("server_reference", Kind.UTF8, (Where.CONNACK, Where.DISCONNECT)),
    0x1F: ("reason_string", Kind.UTF8, _ALL_RS),
    0x21: ("receive_maximum", Kind.U16, (Where.CONNECT, Where.CONNACK)),
    0x22: ("topic_alias_maximum", Kind.U16, (Where.CONNECT, Where.CONNACK)),
    0x23: ("topic_alias", Kind.U16, (Where.PUBLISH,)),
    0x24: ("maximum_qos", Kind.BYTE, (Where.CONNACK,)),
    0x25: ("retain_available", Kind.BYTE, (Where.CONNACK,)),
    0x26: ("user_property", Kind.PAIR, _ALL_UP),
    0x27: ("maximum_packet_size", Kind.U32, (Where.CONNECT, Where.CONNACK)),
    0x28: ("wildcard_subscription_available", Kind.BYTE, (Where.CONNACK,)),
    0x29: ("subscription_identifier_available", Kind.BYTE, (Where.CONNACK,)),
    0x2A: ("shared_subscription_available", Kind.BYTE, (Where.CONNACK,)),
}
IDS: dict[str, tuple[int, Kind]] = {name: (pid, kind) for pid, (name, kind, _) in TABLE.items()}
_REPEATABLE = {"user_property", "subscription_identifier"}
# Values outside these ranges are a protocol error (5.0 §3.1.2.11, §3.2.2.3, §3.3.2.3).
_BYTE_01 = {"payload_format_indicator", "request_problem_information",
            "request_response_information", "maximum_qos", "retain_available",
            "wildcard_subscription_available", "subscription_identifier_available",
            "shared_subscription_available"}
# (A topic alias of 0 is left to the broker, which answers it with 0x94 Topic Alias invalid.)
_NON_ZERO = {"receive_maximum", "maximum_packet_size", "subscription_identifier"}


# The one rule for what travels with a message from its publisher to every receiver (a
# subscriber, a queue consumer, an upstream broker): the application's properties, 5.0
# §3.3.2.3. Everything else a PUBLISH or a will carries is per hop or per connection (topic
# alias, subscription identifiers, will delay) and the message expiry is sent as what is left.
FORWARDED = frozenset(("payload_format_indicator", "content_type", "response_topic",
                       "correlation_data", "user_property"))


def forwarded(props: Properties) -> Properties:
    """The properties of `props` that travel with the message (`FORWARDED`); `props` itself
    when it holds nothing else."""
    for key in props:
        if key not in FORWARDED:
            return cast(Properties, {k: v for k, v in props.items() if k in FORWARDED})
    return props


def encode(props: Properties) -> bytes:
    """Encode a property dict as `varint length + properties`."""
    if not props:
        return b"\x00"
    out = bytearray()
    for name, value in props.items():
        pid, kind = IDS[name]
        if name == "user_property":
            for k, v in props["user_property"]:
                out.append(pid)
                out += wire.utf8(k)
                out += wire.utf8(v)
        elif name == "subscription_identifier":
            for sid in props["subscription_identifier"]:
                out.append(pid)
                out += wire.varint(sid)
        else:
            out.append(pid)
            out += _encode_value(kind, value)
    return wire.varint(len(out)) + out


def _encode_value(kind: Kind, value: object) -> bytes:
    if isinstance(value, int):
        if kind is Kind.BYTE:
            return bytes((value,))
        if kind is Kind.U16:
            return value.to_bytes(2, "big")
        if kind is Kind.U32:
            return value.to_bytes(4, "big")
        return wire.varint(value)
    if isinstance(value, str):
        return wire.utf8(value)
    if isinstance(value, bytes):
        return wire.binary(value)
    raise TypeError(f"property value {value!r} is not an int, str or bytes")


def decode(buf: bytes, pos: int, end: int, where: Where) -> tuple[Properties, int]:
    """Decode the property block at `pos`; return the dict and the position after it."""
    length, pos = wire.read_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise malformed("property length exceeds the packet")
    props: dict[str, Any] = {}  # each value of its TABLE kind: what `Properties` declares
    while pos < stop:
        pid, pos = wire.read_varint(buf, pos, stop)
        entry = TABLE.get(pid)
        if entry is None:
            raise malformed(f"unknown property 0x{pid:02X}")
        name, kind, allowed = entry
        if where not in allowed:
            raise malformed(f"property {name} is not allowed in {where.name}")
        value, pos = _decode_value(kind, buf, pos, stop)
        if name in _BYTE_01 and value not in (0, 1):
            raise protocol_error(f"property {name} must be 0 or 1")
        if name in _NON_ZERO and value == 0:
            raise protocol_error(f"property {name} must not be 0")
        if name in _REPEATABLE:
            props.setdefault(name, []).append(value)
        elif name in props:
            raise protocol_error(f"property {name} appears twice")
        else:
            props[name] = value
    if pos != stop:
        raise malformed("property block overruns its length")
    return cast(Properties, props), stop


def _decode_value(kind: Kind, buf: bytes, pos: int, end: int) -> tuple[object, int]:
    if kind is Kind.BYTE:
        if pos >= end:
            raise malformed("truncated property")
        return buf[pos], pos + 1
    if kind is Kind.U16:
        return wire.read_u16(buf, pos, end)
    if kind is Kind.U32:
        return wire.read_u32(buf, pos, end)
    if kind is Kind.VARINT:
        return wire.read_varint(buf, pos, end)
    if kind is Kind.UTF8:
        return wire.read_utf8(buf, pos, end)
    if kind is Kind.BINARY:
        return wire.read_binary(buf, pos, end)
    key, pos = wire.read_utf8(buf, pos, end)
    value, pos = wire.read_utf8(buf, pos, end)
    return (key, value), pos
