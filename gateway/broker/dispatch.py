"""Which handler takes which packet type: the broker's whole inbound surface in one table,
built once the broker's store is open (`handlers`), with the PUBLISH side's collaborators
handed in (`handle_connect.Connecting`, `handle_publish.Publishing`,
`handle_subscribe.Subscribing`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.broker.handle_connect import Connecting
from gateway.broker.handle_publish import Publishing
from gateway.broker.handle_subscribe import Subscribing
from gateway.mqtt.packets import (
    MQTT_5,
    Auth,
    Connack,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from gateway.mqtt.reasons import MQTTError, Reason, protocol_error

if TYPE_CHECKING:
    from gateway.broker.connection import Connection


Handler = Callable[["Connection", Any], None]


def _connected(handler: Handler) -> Handler:
    """Refuse packets that arrive before the session exists (CONNECT refused or pending)."""
    def guarded(conn: Connection, packet: Any) -> None:
        if conn.session is None:
            raise protocol_error(f"{type(packet).__name__} before CONNACK")
        handler(conn, packet)
    return guarded


def handle_pingreq(conn: Connection, _p: PingReq) -> None:
    conn.send(b"\xd0\x00")


def handle_disconnect(conn: Connection, p: Disconnect) -> None:
    session = conn.session
    assert session is not None
    expiry = p.properties.get("session_expiry_interval")
    if expiry is not None:
        if session.expiry == 0 and expiry > 0:
            raise protocol_error("session expiry cannot be set at DISCONNECT after 0")
        session.expiry = min(expiry, conn.broker.config.mqtt.max_session_expiry)
    if conn.version == MQTT_5 and p.reason_code == Reason.DISCONNECT_WITH_WILL:
        conn.will_now = True
    else:
        conn.clean_disconnect = True
    conn.close()


def handle_unexpected(conn: Connection, packet: Any) -> None:
    if isinstance(packet, Auth):
        raise MQTTError(Reason.PROTOCOL_ERROR, "AUTH without an authentication method")
    raise protocol_error(f"a client must not send {type(packet).__name__}")


def handlers(connecting: Connecting, publishing: Publishing,
             subscribing: Subscribing) -> dict[type, Handler]:
    return {
        Connect: connecting.connect,
        Publish: _connected(publishing.publish),
        PubAck: _connected(publishing.puback),
        PubRec: _connected(publishing.pubrec),
        PubRel: _connected(publishing.pubrel),
        PubComp: _connected(publishing.pubcomp),
        Subscribe: _connected(subscribing.subscribe),
        Unsubscribe: _connected(subscribing.unsubscribe),
        PingReq: _connected(handle_pingreq),
        Disconnect: _connected(handle_disconnect),
        Auth: handle_unexpected,
        Connack: handle_unexpected,
        Suback: handle_unexpected,
        Unsuback: handle_unexpected,
        PingResp: handle_unexpected,
    }
