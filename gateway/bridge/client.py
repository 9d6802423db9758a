"""A minimal asyncio MQTT client (3.1.1 and 5.0) on the sans-IO codec, for bridges.

It connects, subscribes, publishes QoS 0/1, acknowledges the upstream's QoS 1/2 deliveries when
its owner says so (the bridge acknowledges only once the message is committed locally), pings
and notices a silent upstream. The protocol state (packet ids, the QoS exchanges, limits,
keepalive) is an `MqttSession`, the same sans-IO object the broker keeps for each of its
clients: this class only moves bytes and resolves futures. It does not reconnect by itself:
the bridge owns the retry policy, so this class stays one plain connection. Flow control is the
owner's too: `writable` and `on_writable` follow the socket's buffer, `receive_maximum` the
upstream's CONNACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.mqtt import codec
from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Subscription,
    Will,
)
from gateway.mqtt.properties import Properties
from gateway.mqtt.reasons import MQTTError, Reason
from gateway.mqtt.session import MqttSession

BRIDGE_FLAG = 0x80  # Mosquitto's `try_private`: protocol level | 0x80 marks a bridge
PINGREQ = b"\xc0\x00"
UNACCEPTABLE_PROTOCOL_VERSION = 1


class UpstreamError(Exception):
    """The upstream refused or dropped us; the message is meant for the log and `$SYS`.

    `code` is the CONNACK return/reason code when the upstream refused the CONNECT."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class ClientOptions:
    host: str
    port: int
    client_id: str
    version: int = 4
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)  # never in a log line
    keepalive: int = 60
    clean_start: bool = False
    session_expiry: int = 0
    tls: ssl.SSLContext | None = None
    will: Will | None = None
    connect_timeout: float = 10.0
    bridge_flag: bool = False  # 3.1.1 only: ask a Mosquitto-compatible upstream for bridge mode


@dataclass(slots=True)
class Callbacks:
    on_message: Callable[[Publish], None] = lambda p: None
    on_ack: Callable[[int, int], None] = lambda pid, reason: None
    on_close: Callable[[str], None] = lambda why: None
    on_writable: Callable[[], None] = lambda: None


@dataclass(slots=True, eq=False)
class MqttClient(asyncio.Protocol):
    options: ClientOptions
    callbacks: Callbacks = field(default_factory=Callbacks)
    transport: asyncio.Transport | None = None
    decoder: Decoder = field(default_factory=Decoder)
    connack: asyncio.Future[Connack] | None = None
    suback: dict[int, asyncio.Future[Suback]] = field(default_factory=dict)
    session: MqttSession[int] = field(default_factory=MqttSession)  # in flight: the QoS
    closed_reason: str = ""
    writable: bool = True
    last_received: float = 0.0
    _ping: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- life cycle

    async def connect(self) -> Connack:
        """Open the socket and complete CONNECT/CONNACK; raise UpstreamError when refused."""
        loop = asyncio.get_running_loop()
        o = self.options
        self.decoder = Decoder(version=o.version)
        self.connack = loop.create_future()
        try:
            await asyncio.wait_for(loop.create_connection(
                lambda: self, o.host, o.port, ssl=o.tls,
                server_hostname=o.host if o.tls else None), o.connect_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise UpstreamError(f"cannot connect to {o.host}:{o.port}: {_why(e)}") from None
        self._send(self._connect_packet())
        try:
            connack = await asyncio.wait_for(self.connack, o.connect_timeout)
        except TimeoutError:
            self.close()
            raise UpstreamError(f"{o.host}:{o.port} did not answer CONNECT") from None
        if connack.reason_code:
            self.close()
            raise UpstreamError(f"{o.host}:{o.port} refused the connection: "
                                f"{_connack_text(connack.reason_code, o.version)}",
                                connack.reason_code)
        props = connack.properties
        self.session.connect(o.version, keepalive=o.keepalive,
                             send_maximum=props.get("receive_maximum", 65535),
                             max_packet_out=props.get("maximum_packet_size", 268_435_460))
        self._schedule_ping()
        return connack

    def _connect_packet(self) -> Connect:
        o = self.options
        props: Properties = {}
        if o.version == MQTT_5 and o.session_expiry:
            props["session_expiry_interval"] = o.session_expiry
        level = o.version | (BRIDGE_FLAG if o.bridge_flag and o.version != MQTT_5 else 0)
        return Connect(o.client_id, level, o.clean_start, o.keepalive, o.will, o.username,
                       o.password, props)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_received = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._ping is not None:
            self._ping.cancel()
        why = self.closed_reason or (f"connection lost: {_why(exc)}" if exc
                                     else "connection closed by the upstream")
        if self.connack is not None and not self.connack.done():
            self.connack.set_exception(UpstreamError(why))
        for future in self.suback.values():
            if not future.done():
                future.set_exception(UpstreamError(why))
        self.callbacks.on_close(why)

    def close(self, why: str = "") -> None:
        """Say DISCONNECT and close; `on_close` follows from the event loop."""
        if self.transport is not None and not self.transport.is_closing():
            self.closed_reason = self.closed_reason or why or "closed by the gateway"
            with contextlib.suppress(RuntimeError):
                self.transport.write(codec.encode(Disconnect(), self.options.version))
            self.transport.close()

    def abort(self, why: str) -> None:
        """Drop the socket at once (a silent or misbehaving upstream)."""
        if self.transport is not None:
            self.closed_reason = self.closed_reason or why
            self.transport.abort()

    @property
    def receive_maximum(self) -> int:
        """How many QoS 1/2 PUBLISHes the upstream lets us have unacknowledged."""
        return self.session.send_maximum

    @property
    def maximum_packet_size(self) -> int:
        return self.session.max_packet_out

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # ---------------------------------------------------------------- flow control

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.callbacks.on_writable()

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # ---------------------------------------------------------------- sending

    def _send(self, packet: Packet) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(codec.encode(packet, self.options.version))

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False,
                properties: Properties | None = None, dup: bool = False) -> int:
        """Send a PUBLISH; returns its packet id (0 at QoS 0). `on_ack(pid, reason)` follows."""
        pid = self.session.publish(qos) if qos else 0
        self._send(Publish(topic, payload, qos, retain, dup and qos > 0, pid, properties or {}))
        return pid

    def acknowledge(self, packet: Publish, reason: int = 0) -> None:
        """Answer an upstream QoS 1/2 delivery (PUBACK or PUBREC) once it is safe locally."""
        if packet.qos:
            self._send(self.session.ack(packet, reason))

    async def subscribe(self, subscriptions: list[Subscription]) -> list[int]:
        pid = self.session.reserve()
        future: asyncio.Future[Suback] = asyncio.get_running_loop().create_future()
        self.suback[pid] = future
        self._send(Subscribe(pid, subscriptions))
        try:
            return (await asyncio.wait_for(future, self.options.connect_timeout)).reason_codes
        except TimeoutError:
            raise UpstreamError("the upstream did not answer SUBSCRIBE") from None
        finally:
            self.suback.pop(pid, None)
            self.session.unreserve(pid)

    def _schedule_ping(self) -> None:
        keepalive = self.options.keepalive
        if keepalive and self.transport is not None:
            self._ping = asyncio.get_running_loop().call_later(keepalive / 2, self._send_ping)

    def _send_ping(self) -> None:
        """Every keepalive/2: PINGREQ; an upstream silent for 1.5 keepalives is given up."""
        keepalive = self.options.keepalive
        if self.session.silent(asyncio.get_running_loop().time() - self.last_received):
            self.abort(f"no answer from the upstream within {keepalive * 1.5:g}s (keepalive)")
            return
        if self.transport is not None:
            self.transport.write(PINGREQ)
        self._schedule_ping()

    # ---------------------------------------------------------------- receiving

    def data_received(self, data: bytes) -> None:
        self.last_received = asyncio.get_running_loop().time()
        try:
            packets = self.decoder.feed(data)
            for packet in packets:
                self._handle(packet)
        except MQTTError as e:
            self.abort(f"protocol error from the upstream: {e}")

    def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Publish):
            self._incoming(packet)
        elif isinstance(packet, PubAck):
            if self.session.puback(packet) is not None:
                self.callbacks.on_ack(packet.packet_id, packet.reason_code)
        elif isinstance(packet, Connack):
            if self.connack is not None and not self.connack.done():
                self.connack.set_result(packet)
        elif isinstance(packet, PubRel):
            self._send(self.session.pubrel(packet))
        elif isinstance(packet, PubRec):
            done, release = self.session.pubrec(packet)
            if release is not None:
                self._send(release)
            elif done is not None:
                self.callbacks.on_ack(packet.packet_id, packet.reason_code)
        elif isinstance(packet, PubComp):
            if self.session.pubcomp(packet) is not None:
                self.callbacks.on_ack(packet.packet_id, packet.reason_code)
        elif isinstance(packet, Suback):
            future = self.suback.get(packet.packet_id)
            if future is not None and not future.done():
                future.set_result(packet)
        elif isinstance(packet, Disconnect):
            reason = packet.properties.get("reason_string")
            self.closed_reason = (f"the upstream disconnected us "
                                  f"({_reason_text(packet.reason_code)}"
                                  + (f": {reason})" if reason else ")"))
        elif isinstance(packet, PingResp):
            pass

    def _incoming(self, packet: Publish) -> None:
        topic = self.session.receive(packet)
        if topic is None:  # a resend after our PUBREC was lost
            self._send(PubRec(packet.packet_id))
            return
        if packet.qos:
            self.session.expect_ack()
        self.callbacks.on_message(packet)


def _why(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({error.verify_message or error.reason})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failure ({error.reason or error})"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    return str(error) or type(error).__name__


def _reason_text(code: int) -> str:
    try:
        return f"{Reason(code).name.replace('_', ' ').lower()}, 0x{code:02X}"
    except ValueError:
        return f"0x{code:02X}"


def _connack_text(code: int, version: int) -> str:
    if version == MQTT_5:
        return _reason_text(code)
    return {1: "unacceptable protocol version", 2: "identifier rejected",
            3: "server unavailable", 4: "bad user name or password",
            5: "not authorised"}.get(code, f"return code {code}")
