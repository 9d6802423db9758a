"""Row encoding shared by the stores: 5.0 properties as msgpack, messages to and from rows."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.messages import Message
from gateway.mqtt.properties import Properties

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def pack_props(props: Properties) -> bytes | None:
    return _encoder.encode(props) if props else None


def unpack_props(blob: bytes | None) -> Properties:
    if not blob:
        return {}
    props: dict[str, Any] = _decoder.decode(blob)
    if "user_property" in props:
        props["user_property"] = [tuple(p) for p in props["user_property"]]
    return props  # type: ignore[return-value]


def message_from_row(topic: str, payload: bytes, qos: int, retain: int, props: bytes | None,
                     client_id: str | None, created: float | None,
                     expires_at: float | None) -> Message:
    return Message(topic, bytes(payload), qos, bool(retain), unpack_props(props),
                   client_id or "", created or 0.0, expires_at)
