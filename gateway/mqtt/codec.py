"""Encode packets to bytes and decode bytes to packets, for MQTT 3.1.1 and 5.0.

`encode(packet, version)` is a pure function. `Decoder` holds the bytes of a partial packet and
the protocol version learnt from CONNECT; `feed(data)` returns every complete packet. The rule
of the decoder (as h11's): we either parse it, or raise `MQTTError`, never any other exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.mqtt import properties as props
from gateway.mqtt import wire
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
from gateway.mqtt.properties import Properties, Where
from gateway.mqtt.reasons import (
    VALID_AUTH,
    VALID_CONNACK,
    VALID_DISCONNECT,
    VALID_PUBACK,
    VALID_PUBREL,
    VALID_SUBACK,
    VALID_UNSUBACK,
    MQTTError,
    Reason,
    malformed,
    protocol_error,
)

_PROTOCOL_NAMES = {MQTT_31: "MQIsdp", MQTT_311: "MQTT", MQTT_5: "MQTT"}
_WILDCARDS = frozenset("+#")


class UnsupportedProtocol(MQTTError):
    """CONNECT with a protocol level we do not speak: answer with a 3.1.1 CONNACK 0x01."""

    def __init__(self, level: int) -> None:
        super().__init__(Reason.UNSUPPORTED_PROTOCOL_VERSION, f"protocol level {level}")


# ---------------------------------------------------------------------------------- encoding

def _frame(first_byte: int, body: bytes | bytearray) -> bytes:
    return bytes((first_byte,)) + wire.varint(len(body)) + body


def _props(version: int, p: Properties) -> bytes:
    return props.encode(p) if version == MQTT_5 else b""


def encode_publish(p: Publish, version: int) -> bytes:
    return publish_head(p.topic, len(p.payload), p.qos, p.retain, p.dup, p.packet_id,
                        props.encode(p.properties) if version == MQTT_5 else b"") + p.payload


def publish_head(topic: str, payload_size: int, qos: int, retain: bool, dup: bool,
                 packet_id: int, properties: bytes) -> bytes:
    """A PUBLISH up to its payload, from its fields, without a `Publish`: `properties` is the
    encoded property block for 5.0 (`properties.encode`, one zero byte for none) and empty for
    3.1.1. Every outbound message passes here; the payload follows it unchanged, so a sender
    can queue both without copying the payload into a packet first."""
    name = topic.encode()
    size = len(name)
    length = 2 + size + len(properties) + payload_size + (2 if qos else 0)
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    if length < 0x80:
        fixed = bytes((first, length, size >> 8, size & 0xFF))
    elif length < 0x4000:
        fixed = bytes((first, (length & 0x7F) | 0x80, length >> 7, size >> 8, size & 0xFF))
    else:
        fixed = bytes((first,)) + wire.varint(length) + bytes((size >> 8, size & 0xFF))
    if qos:
        return b"".join((fixed, name, bytes((packet_id >> 8, packet_id & 0xFF)), properties))
    return b"".join((fixed, name, properties))


def _encode_connect(p: Connect, _version: int) -> bytes:
    # A CONNECT states its own version: a level-5 CONNECT always carries properties, whatever
    # version the caller passed (the decoder does not know one before the CONNECT either).
    version = MQTT_5 if p.protocol_level == MQTT_5 else MQTT_311
    flags = 0x02 if p.clean_start else 0
    payload = bytearray(wire.utf8(p.client_id))
    if p.will is not None:
        flags |= 0x04 | (p.will.qos << 3) | (0x20 if p.will.retain else 0)
        payload += _props(version, p.will.properties)
        payload += wire.utf8(p.will.topic) + wire.binary(p.will.payload)
    if p.username is not None:
        flags |= 0x80
        payload += wire.utf8(p.username)
    if p.password is not None:
        flags |= 0x40
        payload += wire.binary(p.password)
    name = _PROTOCOL_NAMES.get(p.protocol_level, p.protocol_name)
    body = (wire.utf8(name) + bytes((p.protocol_level, flags)) + wire.u16(p.keepalive)
            + _props(version, p.properties) + payload)
    return _frame(0x10, body)


def _encode_connack(p: Connack, version: int) -> bytes:
    body = bytes((1 if p.session_present else 0, p.reason_code)) + _props(version, p.properties)
    return _frame(0x20, body)


def _ack(first: int, packet_id: int, reason: int, p: Properties, version: int) -> bytes:
    if version != MQTT_5 or (reason == 0 and not p):
        return bytes((first, 2)) + wire.u16(packet_id)
    if not p:
        return bytes((first, 3)) + wire.u16(packet_id) + bytes((reason,))
    return _frame(first, wire.u16(packet_id) + bytes((reason,)) + props.encode(p))


def _encode_subscribe(p: Subscribe, version: int) -> bytes:
    body = bytearray(wire.u16(p.packet_id)) + _props(version, p.properties)
    for s in p.subscriptions:
        options = s.qos
        if version == MQTT_5:
            options |= ((0x04 if s.no_local else 0) | (0x08 if s.retain_as_published else 0)
                        | (s.retain_handling << 4))
        body += wire.utf8(s.filter) + bytes((options,))
    return _frame(0x82, body)


def _encode_suback(p: Suback, version: int) -> bytes:
    return _frame(0x90, wire.u16(p.packet_id) + _props(version, p.properties)
                  + bytes(p.reason_codes))


def _encode_unsubscribe(p: Unsubscribe, version: int) -> bytes:
    body = bytearray(wire.u16(p.packet_id)) + _props(version, p.properties)
    for f in p.filters:
        body += wire.utf8(f)
    return _frame(0xA2, body)


def _encode_unsuback(p: Unsuback, version: int) -> bytes:
    if version != MQTT_5:
        return bytes((0xB0, 2)) + wire.u16(p.packet_id)
    return _frame(0xB0, wire.u16(p.packet_id) + props.encode(p.properties) + bytes(p.reason_codes))


def _encode_reason_only(first: int, reason: int, p: Properties, version: int) -> bytes:
    if version != MQTT_5 or (reason == 0 and not p):
        return bytes((first, 0))
    if not p:
        return bytes((first, 1, reason))
    return _frame(first, bytes((reason,)) + props.encode(p))


# Keyed by each packet's own class, so an encoder only ever gets the class it is written for:
# `Any` says that, without one ignore per entry.
_ENCODERS: dict[type, Callable[[Any, int], bytes]] = {
    Publish: encode_publish,
    Connect: _encode_connect,
    Connack: _encode_connack,
    PubAck: lambda p, v: _ack(0x40, p.packet_id, p.reason_code, p.properties, v),
    PubRec: lambda p, v: _ack(0x50, p.packet_id, p.reason_code, p.properties, v),
    PubRel: lambda p, v: _ack(0x62, p.packet_id, p.reason_code, p.properties, v),
    PubComp: lambda p, v: _ack(0x70, p.packet_id, p.reason_code, p.properties, v),
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_unsuback,
    PingReq: lambda p, v: b"\xc0\x00",
    PingResp: lambda p, v: b"\xd0\x00",
    Disconnect: lambda p, v: _encode_reason_only(0xE0, p.reason_code, p.properties, v),
    Auth: lambda p, v: _encode_reason_only(0xF0, p.reason_code, p.properties, MQTT_5),
}


def encode(packet: Packet, version: int = MQTT_311) -> bytes:
    """The bytes of `packet` as the given protocol version puts them on the wire."""
    return _ENCODERS[type(packet)](packet, version)


# ---------------------------------------------------------------------------------- decoding

class Decoder:
    """Turns a byte stream into packets. `version` is 0 until a CONNECT (or CONNACK) sets it."""

    __slots__ = ("_buf", "error", "max_packet_size", "version")

    def __init__(self, max_packet_size: int = wire.MAX_VARINT + 5, version: int = 0) -> None:
        self._buf = bytearray()
        self.error: MQTTError | None = None
        self.max_packet_size = max_packet_size
        self.version = version

    def feed(self, data: bytes) -> list[Packet]:
        """Append `data`; return the packets now complete, in order.

        A bad packet raises `MQTTError`, except when good packets precede it in the same
        call: those are returned and the error waits in `error` (raised by the next `feed`),
        so the caller handles what the client sent before the fault.
        """
        if self.error is not None:
            raise self.error
        out: list[Packet] = []
        try:
            self._parse(data, out)
        except MQTTError as e:
            if not out:
                raise
            self.error = e
        return out

    def _parse(self, data: bytes, out: list[Packet]) -> None:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        connected = self.version != 0
        while end - pos >= 2:
            first = buf[pos]
            if first == 0x40 and buf[pos + 1] == 2 and connected and end - pos >= 4:
                # a plain PUBACK (every message a subscriber takes at QoS 1): no general path
                packet_id = buf[pos + 2] << 8 | buf[pos + 3]
                if not packet_id:
                    raise malformed("packet identifier 0")
                out.append(PubAck(packet_id))
                pos += 4
                continue
            length, body = self._remaining_length(buf, pos + 1, end)
            if body < 0:
                break
            if body - pos + length > self.max_packet_size:
                raise MQTTError(Reason.PACKET_TOO_LARGE,
                                f"packet of {body - pos + length} bytes exceeds the maximum "
                                f"of {self.max_packet_size}")
            stop = body + length
            if stop > end:
                break
            out.append(self._decode_one(first, bytes(buf[body:stop])))
            pos = stop
        if pos:
            del buf[:pos]

    @staticmethod
    def _remaining_length(buf: bytearray, pos: int, end: int) -> tuple[int, int]:
        """(length, body position), or body position -1 while the header is incomplete."""
        value = 0
        for i in range(4):
            if pos + i >= end:
                return 0, -1
            byte = buf[pos + i]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and not byte:
                    raise malformed("remaining length not in minimal form")
                return value, pos + i + 1
        raise malformed("remaining length longer than 4 bytes")

    def _decode_one(self, first: int, body: bytes) -> Packet:
        kind = first >> 4
        flags = first & 0x0F
        if self.version == 0 and kind not in (1, 2):
            raise protocol_error("the first packet must be CONNECT")
        if kind == 3:
            return _decode_publish(flags, body, self.version)
        expected = 0x02 if kind in (6, 8, 10) else 0
        if flags != expected:
            raise malformed(f"reserved flags 0x{flags:X} in packet type {kind}")
        decoder = _DECODERS.get(kind)
        if decoder is None:
            raise malformed(f"reserved packet type {kind}")
        packet = decoder(body, self.version)
        if isinstance(packet, Connect):
            self.version = MQTT_311 if packet.protocol_level == MQTT_31 else packet.protocol_level
        return packet


def _decode_publish(flags: int, body: bytes, version: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise malformed("PUBLISH with QoS 3")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise malformed("PUBLISH with DUP set at QoS 0")
    end = len(body)
    topic, pos = wire.read_utf8(body, 0, end)
    if _WILDCARDS.intersection(topic):
        raise MQTTError(Reason.TOPIC_NAME_INVALID, "wildcard in a PUBLISH topic name")
    packet_id = 0
    if qos:
        packet_id, pos = wire.read_u16(body, pos, end)
        if packet_id == 0:
            raise malformed("PUBLISH with packet identifier 0")
    properties: Properties
    if version == MQTT_5:
        properties, pos = props.decode(body, pos, end, Where.PUBLISH)
    else:
        properties = {}
    if not topic and "topic_alias" not in properties:
        # [MQTT-4.7.3-1] in 3.1.1; 5.0 §3.3.2.1 allows it only with a topic alias
        raise protocol_error("empty topic name without a topic alias")
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), dup, packet_id, properties)


def _decode_connect(body: bytes, _version: int) -> Connect:
    end = len(body)
    name, pos = wire.read_utf8(body, 0, end)
    if pos >= end:
        raise malformed("truncated CONNECT")
    level = body[pos]
    if name not in ("MQTT", "MQIsdp"):
        raise protocol_error(f"unknown protocol name {name!r}")
    if level not in (MQTT_31, MQTT_311, MQTT_5) or (name == "MQIsdp") != (level == MQTT_31):
        raise UnsupportedProtocol(level)
    if pos + 1 >= end:
        raise malformed("truncated CONNECT")
    flags = body[pos + 1]
    if flags & 0x01:
        raise malformed("CONNECT reserved flag set")
    keepalive, pos = wire.read_u16(body, pos + 2, end)
    will_flag, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise malformed("invalid will flags")
    if level != MQTT_5 and flags & 0x40 and not flags & 0x80:
        raise malformed("password flag without user name flag")
    properties: Properties = {}
    if level == MQTT_5:
        properties, pos = props.decode(body, pos, end, Where.CONNECT)
    client_id, pos = wire.read_utf8(body, pos, end)
    will = None
    if will_flag:
        will_props: Properties = {}
        if level == MQTT_5:
            will_props, pos = props.decode(body, pos, end, Where.WILL)
        will_topic, pos = wire.read_utf8(body, pos, end)
        will_payload, pos = wire.read_binary(body, pos, end)
        will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
    username = password = None
    if flags & 0x80:
        username, pos = wire.read_utf8(body, pos, end)
    if flags & 0x40:
        password, pos = wire.read_binary(body, pos, end)
    if pos != end:
        raise malformed("extra bytes after the CONNECT payload")
    return Connect(client_id, level, bool(flags & 0x02), keepalive, will, username, password,
                   properties, name)


def _decode_connack(body: bytes, version: int) -> Connack:
    end = len(body)
    if end < 2 or body[0] & 0xFE:
        raise malformed("invalid CONNACK")
    properties: Properties = {}
    if version == MQTT_5:
        if body[1] not in VALID_CONNACK:
            raise malformed(f"invalid CONNACK reason 0x{body[1]:02X}")
        properties, pos = props.decode(body, 2, end, Where.CONNACK)
        if pos != end:
            raise malformed("bytes after the CONNACK properties")
    elif end != 2:
        raise malformed("invalid CONNACK length")
    return Connack(body[1], bool(body[0] & 1), properties)


def _decode_ack(cls: type[PubAck | PubRec | PubRel | PubComp], where: Where,
                valid: frozenset[int]) -> Callable[[bytes, int], Packet]:
    def decode(body: bytes, version: int) -> Packet:
        end = len(body)
        packet_id, pos = wire.read_u16(body, 0, end)
        if packet_id == 0:
            raise malformed("packet identifier 0")
        reason = 0
        properties: Properties = {}
        if version == MQTT_5 and end > 2:
            reason = body[2]
            if reason not in valid:
                raise malformed(f"invalid {where.name} reason 0x{reason:02X}")
            if end > 3:
                properties, pos = props.decode(body, 3, end, where)
            else:
                pos = 3
        if pos != end:
            raise malformed(f"invalid {where.name} length")
        return cls(packet_id, reason, properties)
    return decode


def _decode_subscribe(body: bytes, version: int) -> Subscribe:
    end = len(body)
    packet_id, pos = wire.read_u16(body, 0, end)
    if packet_id == 0:
        raise malformed("SUBSCRIBE with packet identifier 0")
    properties: Properties = {}
    if version == MQTT_5:
        properties, pos = props.decode(body, pos, end, Where.SUBSCRIBE)
        if len(properties.get("subscription_identifier", ())) > 1:
            raise protocol_error("more than one subscription identifier")
    subs: list[Subscription] = []
    while pos < end:
        topic_filter, pos = wire.read_utf8(body, pos, end)
        if pos >= end:
            raise malformed("missing subscription options")
        options = body[pos]
        pos += 1
        subs.append(_subscription(topic_filter, options, version))
    if not subs:
        raise protocol_error("SUBSCRIBE without topic filters")
    return Subscribe(packet_id, subs, properties)


def _subscription(topic_filter: str, options: int, version: int) -> Subscription:
    qos = options & 0x03
    if version != MQTT_5:
        if options & 0xFC or qos == 3:
            raise malformed("reserved subscription option bits set")  # [MQTT-3.8.3-4]
        return Subscription(topic_filter, qos)
    if options & 0xC0:
        raise malformed("reserved subscription option bits set")  # [MQTT-3.8.3-5]
    if qos == 3:
        raise protocol_error("subscription QoS 3")  # 5.0 §3.8.3.1
    retain_handling = (options >> 4) & 0x03
    if retain_handling == 3:
        raise protocol_error("retain handling 3")
    return Subscription(topic_filter, qos, bool(options & 0x04), bool(options & 0x08),
                        retain_handling)


def _decode_suback(body: bytes, version: int) -> Suback:
    end = len(body)
    packet_id, pos = wire.read_u16(body, 0, end)
    properties: Properties = {}
    if version == MQTT_5:
        properties, pos = props.decode(body, pos, end, Where.SUBACK)
        bad = [c for c in body[pos:] if c not in VALID_SUBACK]
    else:
        bad = [c for c in body[pos:] if c not in (0, 1, 2, 0x80)]
    if bad or pos >= end:
        raise malformed("invalid SUBACK reason codes")
    return Suback(packet_id, list(body[pos:]), properties)


def _decode_unsubscribe(body: bytes, version: int) -> Unsubscribe:
    end = len(body)
    packet_id, pos = wire.read_u16(body, 0, end)
    if packet_id == 0:
        raise malformed("UNSUBSCRIBE with packet identifier 0")
    properties: Properties = {}
    if version == MQTT_5:
        properties, pos = props.decode(body, pos, end, Where.UNSUBSCRIBE)
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = wire.read_utf8(body, pos, end)
        filters.append(topic_filter)
    if not filters:
        raise protocol_error("UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, filters, properties)


def _decode_unsuback(body: bytes, version: int) -> Unsuback:
    end = len(body)
    packet_id, pos = wire.read_u16(body, 0, end)
    if version != MQTT_5:
        if end != 2:
            raise malformed("invalid UNSUBACK length")
        return Unsuback(packet_id)
    properties, pos = props.decode(body, pos, end, Where.UNSUBACK)
    codes = list(body[pos:])
    if not codes or any(c not in VALID_UNSUBACK for c in codes):
        raise malformed("invalid UNSUBACK reason codes")
    return Unsuback(packet_id, codes, properties)


def _decode_empty(cls: type[PingReq | PingResp]) -> Callable[[bytes, int], Packet]:
    def decode(body: bytes, _version: int) -> Packet:
        if body:
            raise malformed(f"{cls.__name__} with a body")
        return cls()
    return decode


def _decode_reason_only(cls: type[Disconnect | Auth], where: Where,
                        valid: frozenset[int]) -> Callable[[bytes, int], Packet]:
    def decode(body: bytes, version: int) -> Packet:
        if version != MQTT_5:
            if cls is Auth:
                raise protocol_error("AUTH is a 5.0 packet")
            if body:
                raise malformed("DISCONNECT with a body")
            return cls()
        if not body:
            return cls()
        if body[0] not in valid:
            raise malformed(f"invalid {where.name} reason 0x{body[0]:02X}")
        properties: Properties = {}
        if len(body) > 1:
            properties, pos = props.decode(body, 1, len(body), where)
            if pos != len(body):
                raise malformed(f"bytes after the {where.name} properties")
        return cls(body[0], properties)
    return decode


_DECODERS: dict[int, Callable[[bytes, int], Packet]] = {
    1: _decode_connect,
    2: _decode_connack,
    4: _decode_ack(PubAck, Where.PUBACK, VALID_PUBACK),
    5: _decode_ack(PubRec, Where.PUBREC, VALID_PUBACK),
    6: _decode_ack(PubRel, Where.PUBREL, VALID_PUBREL),
    7: _decode_ack(PubComp, Where.PUBCOMP, VALID_PUBREL),
    8: _decode_subscribe,
    9: _decode_suback,
    10: _decode_unsubscribe,
    11: _decode_unsuback,
    12: _decode_empty(PingReq),
    13: _decode_empty(PingResp),
    14: _decode_reason_only(Disconnect, Where.DISCONNECT, VALID_DISCONNECT),
    15: _decode_reason_only(Auth, Where.AUTH, VALID_AUTH),
}
