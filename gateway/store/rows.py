"""Row encoding shared by the stores: 5.0 properties as msgpack, messages from rows."""

from __future__ import annotations

import msgspec

from gateway.messages import Message
from gateway.mqtt.properties import Properties

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Properties).decode


def pack_props(props: Properties) -> bytes | None:
    """The property dict as msgpack, or None for a message without properties."""
    return _encode(props) if props else None


def unpack_props(blob: bytes | None) -> Properties:
    """Back to the typed dict (user properties as tuples again)."""
    return _decode(blob) if blob else {}


def message_from_row(topic: str, payload: bytes, qos: int, retain: int, props: bytes | None,
                     client_id: str | None, created: float | None,
                     expires_at: float | None) -> Message:
    return Message(topic, bytes(payload), qos, bool(retain), unpack_props(props),
                   client_id or "", created or 0.0, expires_at)
