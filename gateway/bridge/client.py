"""A minimal asyncio MQTT client (3.1.1 and 5.0) on the sans-IO codec, for bridges.

It connects, subscribes, publishes QoS 0/1 with a bounded in-flight window, answers the
upstream's QoS 1/2 deliveries, and pings. It does not reconnect by itself: the bridge owns the
retry policy, so this class stays a plain connection.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class UpstreamError(Exception):
    """The upstream refused or dropped us; the message is meant for the log and `$SYS`."""


@dataclass(slots=True)
class ClientOptions:
    host: str
    port: int
    client_id: str
    version: int = 4
    username: str | None = None
    password: bytes | None = None
    keepalive: int = 60
    clean_start: bool = False
    session_expiry: int = 0
    tls: ssl.SSLContext | None = None
    will: Will | None = None
    connect_timeout: float = 10.0


@dataclass(slots=True)
class _Callbacks:
    on_message: Callable[[Publish], None] = lambda p: None
    on_ack: Callable[[int, int], None] = lambda pid, reason: None
    on_close: Callable[[str], None] = lambda why: None


@dataclass(slots=True, eq=False)
class MqttClient(asyncio.Protocol):
    options: ClientOptions
    callbacks: _Callbacks = field(default_factory=_Callbacks)
    transport: asyncio.Transport | None = None
    decoder: Decoder = field(default_factory=Decoder)
    connack: asyncio.Future[Connack] | None = None
    suback: dict[int, asyncio.Future[Suback]] = field(default_factory=dict)
    next_id: int = 1
    in_qos2: set[int] = field(default_factory=set)
    closed_reason: str = ""
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
        props: Properties = {}
        if o.version == MQTT_5 and o.session_expiry:
            props["session_expiry_interval"] = o.session_expiry
        self._send(Connect(o.client_id, o.version, o.clean_start, o.keepalive, o.will,
                           o.username, o.password, props))
        try:
            connack = await asyncio.wait_for(self.connack, o.connect_timeout)
        except TimeoutError:
            self.close()
            raise UpstreamError(f"{o.host}:{o.port} did not answer CONNECT") from None
        if connack.reason_code:
            self.close()
            raise UpstreamError(f"{o.host}:{o.port} refused the connection: "
                                f"{_connack_text(connack.reason_code, o.version)}")
        self._schedule_ping()
        return connack

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._ping is not None:
            self._ping.cancel()
        why = self.closed_reason or (f"connection lost: {exc}" if exc else "connection closed")
        if self.connack is not None and not self.connack.done():
            self.connack.set_exception(UpstreamError(why))
        for future in self.suback.values():
            if not future.done():
                future.set_exception(UpstreamError(why))
        self.callbacks.on_close(why)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(RuntimeError):
                self.transport.write(codec.encode(Disconnect(), self.options.version))
            self.transport.close()

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # ---------------------------------------------------------------- sending

    def _send(self, packet: Packet) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(codec.encode(packet, self.options.version))

    def _allocate(self) -> int:
        pid = self.next_id
        self.next_id = pid % 65535 + 1
        return pid

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False,
                properties: Properties | None = None) -> int:
        """Send a PUBLISH; returns its packet id (0 at QoS 0). `on_ack(pid, reason)` follows."""
        pid = self._allocate() if qos else 0
        self._send(Publish(topic, payload, qos, retain, False, pid, properties or {}))
        return pid

    async def subscribe(self, subscriptions: list[Subscription]) -> list[int]:
        pid = self._allocate()
        future: asyncio.Future[Suback] = asyncio.get_running_loop().create_future()
        self.suback[pid] = future
        self._send(Subscribe(pid, subscriptions))
        try:
            return (await asyncio.wait_for(future, self.options.connect_timeout)).reason_codes
        finally:
            self.suback.pop(pid, None)

    def _schedule_ping(self) -> None:
        keepalive = self.options.keepalive
        if keepalive and self.transport is not None:
            self._ping = asyncio.get_running_loop().call_later(keepalive / 2, self._send_ping)

    def _send_ping(self) -> None:
        if self.transport is not None:
            self.transport.write(b"\xc0\x00")
        self._schedule_ping()

    # ---------------------------------------------------------------- receiving

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.decoder.feed(data)
            for packet in packets:
                self._handle(packet)
        except MQTTError as e:
            self.closed_reason = f"protocol error from upstream: {e}"
            if self.transport is not None:
                self.transport.close()

    def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Connack):
            if self.connack is not None and not self.connack.done():
                self.connack.set_result(packet)
        elif isinstance(packet, PubAck):
            self.callbacks.on_ack(packet.packet_id, packet.reason_code)
        elif isinstance(packet, Publish):
            self._incoming(packet)
        elif isinstance(packet, PubRel):
            self.in_qos2.discard(packet.packet_id)
            self._send(PubComp(packet.packet_id))
        elif isinstance(packet, Suback):
            future = self.suback.get(packet.packet_id)
            if future is not None and not future.done():
                future.set_result(packet)
        elif isinstance(packet, Disconnect):
            self.closed_reason = f"upstream disconnected us (0x{packet.reason_code:02X})"
        elif isinstance(packet, (PingResp, PubRec, PubComp)):
            pass

    def _incoming(self, packet: Publish) -> None:
        if packet.qos == 2:
            if packet.packet_id not in self.in_qos2:
                self.in_qos2.add(packet.packet_id)
                self.callbacks.on_message(packet)
            self._send(PubRec(packet.packet_id))
            return
        self.callbacks.on_message(packet)
        if packet.qos == 1:
            self._send(PubAck(packet.packet_id))


def _why(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return f"TLS failure ({error.reason or error})"
    if isinstance(error, TimeoutError):
        return "timed out"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _connack_text(code: int, version: int) -> str:
    if version == MQTT_5:
        try:
            return f"{Reason(code).name.replace('_', ' ').lower()} (0x{code:02X})"
        except ValueError:
            return f"0x{code:02X}"
    return {1: "unacceptable protocol version", 2: "identifier rejected",
            3: "server unavailable", 4: "bad user name or password",
            5: "not authorised"}.get(code, f"return code {code}")
