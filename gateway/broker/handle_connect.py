"""CONNECT: the checks a client passes before it gets a session, and the CONNACK it receives.

Built from small named checks (as Mosquitto's handle__connect): protocol and client id rules,
authentication, will validity, the negotiated limits, then session attach or takeover.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from gateway.broker import login
from gateway.mqtt.packets import MQTT_5, Connack, Connect
from gateway.mqtt.properties import Properties
from gateway.mqtt.reasons import MQTTError, Reason, connack_code_v311, protocol_error
from gateway.mqtt.topics import topic_name_error

if TYPE_CHECKING:
    from gateway.broker.connection import Connection

MAX_EXPIRY = 0xFFFFFFFF
log = logging.getLogger("gateway.broker")


def handle_connect(conn: Connection, p: Connect) -> None:
    if conn.session is not None or conn.client_id:
        raise protocol_error("second CONNECT")
    conn.version = MQTT_5 if p.protocol_level == MQTT_5 else 4
    client_id, assigned = _client_id(conn, p)
    if "authentication_method" in p.properties:
        _refuse(conn, Reason.BAD_AUTHENTICATION_METHOD, "enhanced authentication is not offered")
        return
    reason = login.check(conn, p, client_id,
                         lambda later: _resume(conn, p, client_id, assigned, later))
    if reason is not None:
        _authenticated(conn, p, client_id, assigned, reason)


def _resume(conn: Connection, p: Connect, client_id: str, assigned: bool, reason: int) -> None:
    """Continue CONNECT after the password was checked on the login executor."""
    if conn.closing:
        return
    try:
        _authenticated(conn, p, client_id, assigned, reason)
    except MQTTError as e:
        conn.protocol_failure(e)
        return
    conn.unblock()


def _authenticated(conn: Connection, p: Connect, client_id: str, assigned: bool,
                   reason: int) -> None:
    broker = conn.broker
    if reason:
        _refuse(conn, reason, login.REFUSALS.get(reason, "bad user name or password"))
        return
    if not broker.may_take(client_id, p.username):
        log.warning("refused %s: client id %s belongs to another user's session (user %s)",
                    conn.peer, client_id, p.username,
                    extra={"CLIENT_ID": client_id, "REASON": "client id of another user"})
        _refuse(conn, Reason.NOT_AUTHORIZED, "this client id belongs to another user")
        return
    reason = _check_will(conn, p, client_id)
    if reason:
        _refuse(conn, reason, "will refused")
        return
    if broker.limits.connection_refused(broker, p.username, client_id):
        _refuse(conn, Reason.QUOTA_EXCEEDED, "too many connections for this user")
        return
    limits = _negotiate(conn, p)
    conn.client_id = client_id
    conn.username = p.username
    conn.reader = broker.access.reader(p.username, client_id)
    expiry = _session_expiry(conn, p)
    session_present = broker.attach(conn, client_id, p.clean_start, expiry, p.will, p.username)
    session = conn.session
    assert session is not None
    session.mqtt.connect(conn.version, **limits)
    conn.send_packet(Connack(0, session_present,
                             _connack_props(conn, p, assigned, expiry, session.mqtt.keepalive)))
    broker.session_started(session)


def _client_id(conn: Connection, p: Connect) -> tuple[str, bool]:
    """The client id, or one we assign to an empty id [MQTT-3.1.3-6, -8]."""
    if p.client_id:
        return p.client_id, False
    if conn.version != MQTT_5 and not p.clean_start:
        raise MQTTError(Reason.CLIENT_IDENTIFIER_NOT_VALID,
                        "an empty client id needs clean session")
    return f"edgeq-{secrets.token_hex(8)}", True


def _refuse(conn: Connection, reason: int, text: str) -> None:
    if conn.version == MQTT_5:
        conn.send_packet(Connack(reason, False, conn.reason_props(text)))
    else:
        conn.send_packet(Connack(connack_code_v311(reason), False))
    conn.broker.stats.refused += 1
    conn.close()


def _check_will(conn: Connection, p: Connect, client_id: str) -> int:
    will = p.will
    if will is None:
        return 0
    settings = conn.broker.config.mqtt
    if topic_name_error(will.topic):
        return Reason.TOPIC_NAME_INVALID
    if will.qos > settings.max_qos:
        return Reason.QOS_NOT_SUPPORTED
    if will.retain and not settings.retain_available:
        return Reason.RETAIN_NOT_SUPPORTED
    return conn.broker.access.publish_reason(p.username, client_id, will.topic)


def _negotiate(conn: Connection, p: Connect) -> dict[str, Any]:
    """The limits of this connection (`MqttSession.connect`): what the client asked for
    (receive maximum, packet size, topic aliases, keepalive) within the broker's settings."""
    props = p.properties
    settings = conn.broker.config.mqtt
    receive_maximum = props.get("receive_maximum", 65535)
    max_packet = props.get("maximum_packet_size", 268_435_460)
    if receive_maximum == 0 or max_packet == 0:
        raise protocol_error("receive maximum and maximum packet size must not be 0")
    keepalive = p.keepalive
    if settings.max_keepalive and (keepalive == 0 or keepalive > settings.max_keepalive):
        keepalive = settings.max_keepalive
    return {"keepalive": keepalive, "receive_maximum": settings.receive_maximum,
            "send_maximum": min(receive_maximum, settings.max_inflight_messages),
            "max_packet_out": max_packet, "alias_maximum": settings.topic_alias_maximum,
            "alias_maximum_out": props.get("topic_alias_maximum", 0),
            "max_qos": settings.max_qos, "retain_available": settings.retain_available,
            "problem_info": props.get("request_problem_information", 1) == 1}


def _session_expiry(conn: Connection, p: Connect) -> int:
    """5.0: what the client asks, up to `max_session_expiry`; 3.1.1 clean session 0:
    `persistent_session_expiry` (0 there means forever)."""
    settings = conn.broker.config.mqtt
    if conn.version != MQTT_5:
        return 0 if p.clean_start else (settings.persistent_session_expiry or MAX_EXPIRY)
    return min(p.properties.get("session_expiry_interval", 0), settings.max_session_expiry)


def _connack_props(conn: Connection, p: Connect, assigned: bool, expiry: int,
                   keepalive: int) -> Properties:
    if conn.version != MQTT_5:
        return {}
    settings = conn.broker.config.mqtt
    props: Properties = {
        "receive_maximum": settings.receive_maximum,
        "maximum_packet_size": settings.max_packet_size,
        "topic_alias_maximum": settings.topic_alias_maximum,
        "wildcard_subscription_available": 1,
        "subscription_identifier_available": 1,
        "shared_subscription_available": 1,
    }
    if settings.max_qos < 2:
        props["maximum_qos"] = settings.max_qos
    if not settings.retain_available:
        props["retain_available"] = 0
    if assigned:
        props["assigned_client_identifier"] = conn.client_id
    if keepalive != p.keepalive:
        props["server_keep_alive"] = keepalive
    if expiry != p.properties.get("session_expiry_interval", 0):
        props["session_expiry_interval"] = expiry
    if p.properties.get("request_response_information") == 1:
        props["response_information"] = f"response/{conn.client_id}"
    return props
