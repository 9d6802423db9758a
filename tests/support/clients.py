"""Clients for the end-to-end tests (broker, queues, bridge, reliability), every wait bounded.

`RawClient` speaks MQTT over a plain socket, packet by packet, so a test can send byte-exact
(and deliberately broken) packets and see exactly what the broker answers, as Mosquitto's
black-box tests do. It encodes and decodes with the gateway's sans-IO codec, which has its own
unit tests in tests/mqtt.

`PahoClient` drives a real paho-mqtt 2.x client from a test synchronously: each call waits for
its acknowledgement; received messages land in a queue read with a timeout.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import subprocess
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.mqtt import codec
from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Packet,
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

TIMEOUT = 5.0
QUIET = 0.3  # how long "nothing arrives" is watched for
P = TypeVar("P", bound=Packet)


class ServerClosed(AssertionError):
    """The broker closed the connection while the test waited for a packet."""


# ------------------------------------------------------------------------------ raw sockets

def fixed_header(first: int, remaining: int) -> bytes:
    """A fixed header: first byte and the remaining length as a variable byte integer."""
    out = bytearray((first,))
    while True:
        byte, remaining = remaining & 0x7F, remaining >> 7
        out.append(byte | (0x80 if remaining else 0))
        if not remaining:
            return bytes(out)


def utf8(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return len(raw).to_bytes(2, "big") + raw


class RawClient:
    """One MQTT connection over a plain socket, read packet by packet with timeouts."""

    def __init__(self, port: int, version: int = MQTT_5, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self.version = version
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = tls.wrap_socket(sock, server_hostname=host) if tls else sock
        except (OSError, ssl.SSLError):
            sock.close()
            raise
        self.raw_in = bytearray()
        self.closed = False
        self._decoder = Decoder(version=version)
        self._packets: deque[Packet] = deque()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the socket without DISCONNECT: an abnormal disconnect for the broker."""
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- bytes in and out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_packet(self, packet: Packet) -> None:
        self.send(codec.encode(packet, self.version))

    def _fill(self, deadline: float) -> None:
        """Read what the socket has; raise TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing more from the broker in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("nothing more from the broker in time") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        self.raw_in += data
        self._packets.extend(self._decoder.feed(data))

    def read(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet from the broker; ServerClosed if it closes the connection first."""
        deadline = time.monotonic() + timeout
        while not self._packets:
            if self.closed:
                raise ServerClosed("the broker closed the connection")
            self._fill(deadline)
        return self._packets.popleft()

    def expect(self, kind: type[P], timeout: float = TIMEOUT) -> P:
        packet = self.read(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    def read_until_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Every packet until the broker closes the connection (TimeoutError if it does not)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            self._fill(deadline)
        out = list(self._packets)
        self._packets.clear()
        return out

    def expect_disconnect(self, reason: int, timeout: float = TIMEOUT) -> Disconnect:
        """The broker sends DISCONNECT with `reason` and closes; nothing else before it."""
        packets = self.read_until_closed(timeout)
        assert packets and isinstance(packets[-1], Disconnect), f"no DISCONNECT in {packets!r}"
        assert packets[-1].reason_code == reason, (
            f"DISCONNECT 0x{packets[-1].reason_code:02X}, expected 0x{reason:02X} "
            f"({packets[-1].properties.get('reason_string')})")
        return packets[-1]

    def expect_silence(self, duration: float = QUIET) -> None:
        """Nothing arrives for `duration` seconds and the connection stays open."""
        deadline = time.monotonic() + duration
        with contextlib.suppress(TimeoutError):
            while not self._packets and not self.closed:
                self._fill(deadline)
        assert not self._packets, f"unexpected {list(self._packets)!r}"
        assert not self.closed, "the broker closed the connection"

    # -- packet flows

    def connect(self, client_id: str = "", *, clean_start: bool = True, keepalive: int = 60,
                properties: Properties | None = None, will: Will | None = None,
                username: str | None = None, password: bytes | None = None) -> Connack:
        self.send_packet(Connect(client_id, self.version, clean_start, keepalive, will,
                                 username, password, properties or {}))
        return self.expect(Connack)

    def subscribe(self, *subs: str | Subscription, qos: int = 0, packet_id: int = 1,
                  properties: Properties | None = None) -> Suback:
        items = [s if isinstance(s, Subscription) else Subscription(s, qos) for s in subs]
        self.send_packet(Subscribe(packet_id, items, properties or {}))
        suback = self.expect(Suback)
        assert suback.packet_id == packet_id
        return suback

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, *, retain: bool = False,
                packet_id: int = 1, properties: Properties | None = None) -> Packet | None:
        """Publish and finish the flow: PUBACK (QoS 1) or PUBCOMP after PUBREC/PUBREL (QoS 2)."""
        self.send_packet(Publish(topic, payload, qos, retain, False, packet_id if qos else 0,
                                 properties or {}))
        if qos == 1:
            return self.expect(PubAck)
        if qos == 2:
            rec = self.expect(PubRec)
            if rec.reason_code >= 0x80:
                return rec
            self.send_packet(PubRel(packet_id))
            return self.expect(PubComp)
        return None

    def receive(self, timeout: float = TIMEOUT, ack: bool = True) -> Publish:
        """The next PUBLISH; acknowledged at QoS 1, and at QoS 2 through PUBCOMP, if `ack`."""
        publish = self.expect(Publish, timeout)
        if ack and publish.qos == 1:
            self.send_packet(PubAck(publish.packet_id))
        elif ack and publish.qos == 2:
            self.send_packet(PubRec(publish.packet_id))
            rel = self.expect(PubRel)
            assert rel.packet_id == publish.packet_id
            self.send_packet(PubComp(publish.packet_id))
        return publish

    def disconnect(self, reason: int = 0, properties: Properties | None = None) -> None:
        """A clean DISCONNECT, then wait until the broker closes the socket."""
        self.send_packet(Disconnect(reason, properties or {}))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(TimeoutError, OSError):
            self.read_until_closed(2.0)
        self.close()


def connected(port: int, client_id: str, version: int = MQTT_5, **connect: Any) -> RawClient:
    """A RawClient that has passed CONNECT (asserting the CONNACK accepted it)."""
    client = RawClient(port, version)
    connack = client.connect(client_id, **connect)
    assert connack.reason_code == 0, f"CONNACK 0x{connack.reason_code:02X}"
    return client


# ------------------------------------------------------------------------------ paho

V311 = MQTTProtocolVersion.MQTTv311
V5 = MQTTProtocolVersion.MQTTv5


@dataclass
class ConnectResult:
    reason: int
    session_present: bool
    properties: Any = None


@dataclass
class PahoClient:
    """A paho-mqtt 2.x client whose calls wait for the broker's answer."""

    port: int
    client_id: str = ""
    protocol: MQTTProtocolVersion = V5
    transport: str = "tcp"
    clean: bool = True
    manual_ack: bool = False
    host: str = "127.0.0.1"
    messages: queue.Queue[paho.MQTTMessage] = field(default_factory=queue.Queue)
    client: paho.Client = field(init=False)
    _events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id,
            clean_session=self.clean if self.protocol != V5 else None,
            protocol=self.protocol, transport=self.transport,  # type: ignore[arg-type]
            reconnect_on_failure=False, manual_ack=self.manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, m: self.messages.put(m)

    # callbacks run on paho's network thread; the test thread waits on `_events`

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._events.put(("connack", ConnectResult(rc.value, flags.session_present, props)))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode],
                      _p: Any) -> None:
        self._events.put(("suback", (mid, [c.value for c in codes])))

    def _on_unsubscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode],
                        _p: Any) -> None:
        self._events.put(("unsuback", mid))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._events.put(("disconnect", rc.value))

    def wait_event(self, kind: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                name, value = self._events.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise TimeoutError(f"{self.client_id}: no {kind} in {timeout}s") from None
            if name == kind:
                return value

    # -- calls

    def connect(self, keepalive: int = 60, *, clean_start: bool = True,
                properties: PahoProperties | None = None, expect: int = 0) -> ConnectResult:
        start = clean_start if self.protocol == V5 else paho.MQTT_CLEAN_START_FIRST_ONLY
        self.client.connect(self.host, self.port, keepalive, clean_start=start,
                            properties=properties)
        self.client.loop_start()
        result: ConnectResult = self.wait_event("connack")
        assert result.reason == expect, f"CONNACK {result.reason}, expected {expect}"
        return result

    def subscribe(self, topic: str, qos: int = 0, options: SubscribeOptions | None = None,
                  properties: PahoProperties | None = None) -> list[int]:
        if options is not None:
            _, mid = self.client.subscribe(topic, options=options, properties=properties)
        else:
            _, mid = self.client.subscribe(topic, qos, properties=properties)
        got_mid, codes = self.wait_event("suback")
        assert got_mid == mid
        return codes  # type: ignore[no-any-return]

    def unsubscribe(self, topic: str) -> None:
        _, mid = self.client.unsubscribe(topic)
        assert self.wait_event("unsuback") == mid

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                properties: PahoProperties | None = None) -> paho.MQTTMessageInfo:
        """Publish and wait until the flow is complete (PUBACK, PUBCOMP, or sent at QoS 0)."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"{topic}: not acknowledged in {TIMEOUT}s"
        return info

    def get(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.client_id}: no message in {timeout}s") from None

    def get_many(self, n: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
        deadline = time.monotonic() + timeout
        return [self.get(max(deadline - time.monotonic(), 0.001)) for _ in range(n)]

    def expect_nothing(self, duration: float = QUIET) -> None:
        with contextlib.suppress(queue.Empty):
            message = self.messages.get(timeout=duration)
            raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")

    def disconnect(self, reasoncode: ReasonCode | None = None,
                   properties: PahoProperties | None = None) -> None:
        """A clean DISCONNECT; waits for paho to see the socket closed."""
        self.client.disconnect(reasoncode, properties)
        with contextlib.suppress(TimeoutError):
            self.wait_event("disconnect", 2.0)
        self.client.loop_stop()

    def drop(self) -> None:
        """Vanish without DISCONNECT (network loss, crash): the broker sees an abnormal close."""
        wrapper = self.client.socket()
        # the TCP socket itself, also under paho's WebSocket wrapper
        sock = cast(socket.socket | None, getattr(wrapper, "_socket", wrapper))
        if sock is not None:  # paho's thread sees the socket die and stops without DISCONNECT
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()


@contextlib.contextmanager
def paho_client(port: int, client_id: str = "", protocol: MQTTProtocolVersion = V5,
                keepalive: int = 60, **kwargs: Any) -> Iterator[PahoClient]:
    """A connected PahoClient, disconnected (if still connected) at the end of the block."""
    client = PahoClient(port, client_id, protocol, **kwargs)
    client.connect(keepalive)
    try:
        yield client
    finally:
        if client.client.is_connected():
            client.disconnect()
        client.client.loop_stop()


def props(packet_type: int, **values: Any) -> PahoProperties:
    """paho Properties for `packet_type` (a `PacketTypes` value) from keyword values:
    `props(PacketTypes.PUBLISH, MessageExpiryInterval=5)`."""
    out = PahoProperties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(out, name, value)
    return out


def tls_context(cafile: str, certfile: str | None = None, keyfile: str | None = None
                ) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


# ------------------------------------------------------------------------------ mosquitto CLI

class MosquittoSub:
    """`mosquitto_sub -d` in a subprocess; its debug lines tell when the SUBACK arrived."""

    def __init__(self, port: int, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            # stdbuf: line-buffered stdout, so each line is seen when printed, not at exit
            ["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", str(port),
             "-W", "10", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []

    def wait_for(self, needle: str, timeout: float = TIMEOUT) -> str:
        """Read stdout until a line contains `needle`; -W 10 bounds the subprocess itself."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if needle in line:
                return line.rstrip("\n")
        raise AssertionError(f"mosquitto_sub never printed {needle!r}: {self.lines}")

    def finish(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def mosquitto_pub(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), *args],
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    return result

