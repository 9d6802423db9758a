"""CONNECT: the checks a client passes before it gets a session, and the CONNACK it receives.

Built from small named checks (as Mosquitto's handle__connect): protocol and client id rules,
authentication, will validity, the negotiated limits, then session attach or takeover.
`Connecting` holds what it uses (the ACL and authentication, stats, limits), handed in by the
broker; the checks that only need the settings are plain functions of them.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, Protocol

from gateway.broker import login
from gateway.mqtt.packets import MQTT_5, Connack, Connect
from gateway.mqtt.properties import Properties
from gateway.mqtt.reasons import MQTTError, Reason, connack_code_v311, protocol_error
from gateway.mqtt.topics import topic_name_error

if TYPE_CHECKING:
    from gateway.broker.access import Access
    from gateway.broker.connection import Connection
    from gateway.broker.limits import Limits
    from gateway.broker.login import Logins
    from gateway.broker.server import Stats
    from gateway.broker.session import Session
    from gateway.config import Config, MqttSettings
    from gateway.mqtt.packets import Will

MAX_EXPIRY = 0xFFFFFFFF
log = logging.getLogger("gateway.broker")


class Core(Protocol):
    """What CONNECT needs of the broker itself: its sessions and live connections."""

    @property
    def config(self) -> Config:
        """The running config (replaced on reload)."""

    @property
    def live(self) -> dict[str, Connection]:
        """The connection of each connected client id."""

    def may_take(self, client_id: str, username: str | None) -> bool: ...
    def attach(self, conn: Connection, client_id: str, clean_start: bool, expiry: int,
               will: Will | None, username: str | None) -> bool: ...
    def session_started(self, session: Session) -> None: ...


class Connecting:
    """The CONNECT handler and what it uses."""

    __slots__ = ("_access", "_core", "_limits", "_logins", "_stats")

    def __init__(self, core: Core, *, access: Access, logins: Logins, stats: Stats,
                 limits: Limits) -> None:
        self._core = core
        self._access = access
        self._logins = logins
        self._stats = stats
        self._limits = limits

    def connect(self, conn: Connection, p: Connect) -> None:
        if conn.session is not None or conn.client_id:
            raise protocol_error("second CONNECT")
        conn.version = MQTT_5 if p.protocol_level == MQTT_5 else 4
        client_id, assigned = _client_id(conn, p)
        if "authentication_method" in p.properties:
            self._refuse(conn, Reason.BAD_AUTHENTICATION_METHOD,
                         "enhanced authentication is not offered")
            return
        reason = self._logins.check(
            conn, p, client_id, lambda later: self._resume(conn, p, client_id, assigned, later))
        if reason is not None:
            self._authenticated(conn, p, client_id, assigned, reason)

    def _resume(self, conn: Connection, p: Connect, client_id: str, assigned: bool,
                reason: int) -> None:
        """Continue CONNECT after the password was checked on the login executor."""
        if conn.closing:
            return
        try:
            self._authenticated(conn, p, client_id, assigned, reason)
        except MQTTError as e:
            conn.protocol_failure(e)
            return
        conn.unblock()

    def _authenticated(self, conn: Connection, p: Connect, client_id: str, assigned: bool,
                       reason: int) -> None:
        core = self._core
        settings = core.config.mqtt
        if reason:
            self._refuse(conn, reason, login.REFUSALS.get(reason, "bad user name or password"))
            return
        if not core.may_take(client_id, p.username):
            log.warning("refused %s: client id %s belongs to another user's session (user %s)",
                        conn.peer, client_id, p.username,
                        extra={"CLIENT_ID": client_id, "REASON": "client id of another user"})
            self._refuse(conn, Reason.NOT_AUTHORIZED, "this client id belongs to another user")
            return
        reason = self._check_will(settings, p, client_id)
        if reason:
            self._refuse(conn, reason, "will refused")
            return
        if self._limits.connection_refused(settings.max_connections_per_user,
                                           core.live.values(), p.username, client_id):
            self._refuse(conn, Reason.QUOTA_EXCEEDED, "too many connections for this user")
            return
        limits = _negotiate(settings, p)
        conn.client_id = client_id
        conn.username = p.username
        conn.reader = self._access.reader(p.username, client_id)
        expiry = _session_expiry(settings, conn.version, p)
        session_present = core.attach(conn, client_id, p.clean_start, expiry, p.will,
                                      p.username)
        session = conn.session
        assert session is not None
        session.mqtt.connect(conn.version, **limits)
        conn.send_packet(Connack(0, session_present,
                                 _connack_props(settings, conn, p, assigned, expiry,
                                                session.mqtt.keepalive)))
        core.session_started(session)

    def _refuse(self, conn: Connection, reason: int, text: str) -> None:
        if conn.version == MQTT_5:
            conn.send_packet(Connack(reason, False, conn.reason_props(text)))
        else:
            conn.send_packet(Connack(connack_code_v311(reason), False))
        self._stats.refused += 1
        conn.close()

    def _check_will(self, settings: MqttSettings, p: Connect, client_id: str) -> int:
        will = p.will
        if will is None:
            return 0
        if topic_name_error(will.topic):
            return Reason.TOPIC_NAME_INVALID
        if will.qos > settings.max_qos:
            return Reason.QOS_NOT_SUPPORTED
        if will.retain and not settings.retain_available:
            return Reason.RETAIN_NOT_SUPPORTED
        return self._access.publish_reason(p.username, client_id, will.topic)


def _client_id(conn: Connection, p: Connect) -> tuple[str, bool]:
    """The client id, or one we assign to an empty id [MQTT-3.1.3-6, -8]."""
    if p.client_id:
        return p.client_id, False
    if conn.version != MQTT_5 and not p.clean_start:
        raise MQTTError(Reason.CLIENT_IDENTIFIER_NOT_VALID,
                        "an empty client id needs clean session")
    return f"edgeq-{secrets.token_hex(8)}", True


def _negotiate(settings: MqttSettings, p: Connect) -> dict[str, Any]:
    """The limits of this connection (`MqttSession.connect`): what the client asked for
    (receive maximum, packet size, topic aliases, keepalive) within the broker's settings."""
    props = p.properties
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


def _session_expiry(settings: MqttSettings, version: int, p: Connect) -> int:
    """5.0: what the client asks, up to `max_session_expiry`; 3.1.1 clean session 0:
    `persistent_session_expiry` (0 there means forever)."""
    if version != MQTT_5:
        return 0 if p.clean_start else (settings.persistent_session_expiry or MAX_EXPIRY)
    return min(p.properties.get("session_expiry_interval", 0), settings.max_session_expiry)


def _connack_props(settings: MqttSettings, conn: Connection, p: Connect, assigned: bool,
                   expiry: int, keepalive: int) -> Properties:
    if conn.version != MQTT_5:
        return {}
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
