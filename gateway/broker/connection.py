"""One client connection: an asyncio Protocol that moves bytes between the socket and the codec.

It decodes with `gateway.mqtt.codec.Decoder`, hands each packet to the handler for its type
(`handle_connect`, `handle_publish`, `handle_subscribe`), and writes replies in one batch per
loop turn. Connection-fatal `MQTTError`s are caught here, and only here: 5.0 clients get a
DISCONNECT (or a CONNACK before CONNECT completed) with the reason code, 3.1.1 clients a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from gateway.broker.session import Outgoing, Session
from gateway.mqtt import codec
from gateway.mqtt.codec import Decoder, UnsupportedProtocol, publish_head
from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Connack,
    Disconnect,
    Packet,
    PingReq,
    PubRel,
)
from gateway.mqtt.properties import Properties
from gateway.mqtt.properties import encode as encode_props
from gateway.mqtt.reasons import MQTTError, Reason

if TYPE_CHECKING:
    from gateway.broker.access import Reader
    from gateway.broker.server import Broker

log = logging.getLogger("gateway.connection")
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 seconds
_HELD_PACKETS = 256  # packets held while blocked before the socket stops being read


class Connection(asyncio.Protocol):
    """The live link of a session; implements `session.Link` for outbound messages.

    Slotted, with no packet deque while nothing is pending: an idle connection is a few
    hundred bytes here, not kilobytes (docs/sizing.md)."""

    __slots__ = ("_flush_scheduled", "_out", "_out_bytes", "_paused_writing", "_pending",
                 "_reading_paused", "_starved", "_write_high", "_write_limit", "acks_waiting",
                 "blocked", "broker", "clean_disconnect", "client_id", "closing", "connected_at",
                 "decoder", "last_seen", "listener", "peer", "reader", "session", "transport",
                 "username", "version", "will_now")

    def __init__(self, broker: Broker, listener: str) -> None:
        self.broker = broker
        self.listener = listener
        self.decoder = Decoder(broker.config.mqtt.max_packet_size)
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.client_id = ""
        self.username: str | None = None
        self.reader: Reader | None = None  # set at CONNECT: the delivery check of this client
        self.peer = ""
        self.version = MQTT_311
        self.last_seen = 0.0
        self.connected_at = 0.0
        self.acks_waiting = 0
        self.clean_disconnect = False
        self.will_now = False
        self.closing = False
        self.blocked = False
        self._reading_paused = False
        self._pending: deque[Packet] | None = None  # packets decoded and not yet handled
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._paused_writing = False
        self._starved = False  # writable() said no because of output not yet flushed
        self._write_limit = broker.config.mqtt.client_output_buffer
        # Flow-controlled senders (queue dispatch, session drain) stop at this much unflushed
        # output, so what one loop turn queues stays far below the disconnect limit.
        self._write_high = min(self._write_limit // 2, 256 * 1024)

    # -------------------------------------------------------------------- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        self.last_seen = self.connected_at = self.broker.loop.time()
        self.transport.set_write_buffer_limits(high=min(self._write_limit, 256 * 1024))
        self.broker.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.broker.loop.time()
        self.broker.stats.bytes_received += len(data)
        if self.closing:
            return
        try:
            packets = self.decoder.feed(data)
        except UnsupportedProtocol as e:
            log.info("refusing %s: %s", self.peer, e, extra={"REASON": e.reason.name})
            self._write_now(b"\x20\x02\x00\x01")
            self.close()
            return
        except MQTTError as e:
            self.protocol_failure(e)
            return
        if self.blocked:
            self._hold(packets)
            return
        if self._pending is None:
            self._pending = deque(packets)
        else:
            self._pending.extend(packets)
        self.process()

    def _hold(self, packets: list[Packet]) -> None:
        """While blocked, keep answering PINGREQ (the client must not think us dead) and hold
        everything else; stop reading the socket only when too much is held."""
        if self._pending is None:
            self._pending = deque()
        for packet in packets:
            if type(packet) is PingReq and self.session is not None:
                self.send(b"\xd0\x00")
            else:
                self._pending.append(packet)
        if len(self._pending) >= _HELD_PACKETS and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def process(self) -> None:
        """Handle decoded packets in order until done, closed, or blocked by a full queue."""
        handlers = self.broker.handlers
        pending = self._pending
        try:
            while pending and not self.blocked and not self.closing:
                packet = pending.popleft()
                handlers[type(packet)](self, packet)
        except MQTTError as e:
            self.protocol_failure(e)
            return
        if self.blocked and pending:
            held = list(pending)
            pending.clear()
            self._hold(held)
        if not self._pending:  # a handler may have pushed a packet back (push_front)
            self._pending = None
            if self.decoder.error is not None:
                self.protocol_failure(self.decoder.error)

    def push_front(self, packet: Packet) -> None:
        """Put a packet back to be handled first once unblocked (queue `block` overflow)."""
        if self._pending is None:
            self._pending = deque()
        self._pending.appendleft(packet)

    def block(self) -> None:
        """Stop handling packets (a full `block` queue, the memory budget, a password check)."""
        self.blocked = True

    def unblock(self) -> None:
        self.blocked = False
        if self._reading_paused and self.transport is not None and not self.closing:
            self._reading_paused = False
            self.transport.resume_reading()
        self.process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.broker.connection_closed(self)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self.session is not None:
            self.session.drain()
            self.broker.consumer_ready(self.session)

    def writable(self) -> bool:
        if self._paused_writing or self.closing:
            return False
        if self._out_bytes >= self._write_high:
            self._starved = True
            return False
        return True

    # -------------------------------------------------------------------- output

    def send(self, data: bytes) -> None:
        """Queue bytes for the socket; everything queued in one loop turn goes in one write."""
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.broker.loop.call_soon(self._flush)

    def send_packet(self, packet: Packet) -> None:
        self.send(codec.encode(packet, self.version))

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        self._out_bytes = 0
        transport = self.transport
        if transport is None or transport.is_closing() or not out:
            return
        # A client that does not read is one whose buffer is still over the limit when more
        # comes: one large message on its own (up to max_packet_size) never counts as that.
        if transport.get_write_buffer_size() > self._write_limit:
            log.warning("client %s does not read its messages; disconnecting", self.client_id,
                        extra={"CLIENT_ID": self.client_id, "REASON": "output buffer full"})
            self.abort()
            return
        data = b"".join(out) if len(out) > 1 else out[0]
        self.broker.stats.bytes_sent += len(data)
        transport.write(data)
        if self._starved:  # the socket took it: flow-controlled senders go on, next turn
            self._starved = False
            self.broker.loop.call_soon(self._resume_if_writable)

    def _resume_if_writable(self) -> None:
        if not self._paused_writing and not self.closing:
            self.resume_writing()

    def _write_now(self, data: bytes) -> None:
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_publish(self, out: Outgoing, packet_id: int) -> None:
        """Encode one outbound PUBLISH for this client (Link protocol). Every message to a
        client passes here, so here the ACL decides whether it may be read; a denied one is
        finished on the next loop turn (no recursion through a backlog of denied messages)."""
        msg = out.message
        session = self.session
        assert session is not None  # a session sends only through its live connection
        reader = self.reader
        if reader is not None and not reader.allows(msg.topic):
            self.broker.stats.deliveries_denied += 1
            self.broker.loop.call_soon(self.broker.outgoing_done, self, out, packet_id,
                                       Reason.NOT_AUTHORIZED)
            return
        expires_at = msg.expires_at
        if expires_at is not None and self.broker.clock() >= expires_at:
            self.broker.outgoing_done(self, out, packet_id)
            return
        mqtt = session.mqtt
        payload = msg.payload
        if self.version != MQTT_5:
            head = publish_head(msg.topic, len(payload), out.qos, out.retain, out.dup,
                                packet_id, b"")
        elif msg.properties or expires_at is not None or out.sub_ids or mqtt.alias_maximum_out:
            props = msg.properties_at(self.broker.clock())
            if out.sub_ids:
                props["subscription_identifier"] = list(out.sub_ids)
            topic = mqtt.outgoing_topic(msg.topic, props) if mqtt.alias_maximum_out else msg.topic
            head = publish_head(topic, len(payload), out.qos, out.retain, out.dup, packet_id,
                                encode_props(props))
        else:  # no property to send: the common case, without a dict
            head = publish_head(msg.topic, len(payload), out.qos, out.retain, out.dup,
                                packet_id, b"\x00")
        size = len(head) + len(payload)
        if size > mqtt.max_packet_out:
            if out.token:  # a queue offers it to another consumer or dead-letters it, later
                self.broker.loop.call_soon(self.broker.outgoing_done, self, out, packet_id,
                                           Reason.PACKET_TOO_LARGE)
            else:
                self.broker.outgoing_done(self, out, packet_id)
            return
        self.broker.stats.messages_sent += 1
        # head and payload as they are: the flush joins everything of this loop turn once
        self._out += (head, payload)
        self._out_bytes += size
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.broker.loop.call_soon(self._flush)

    def send_pubrel(self, packet_id: int) -> None:
        self.send_packet(PubRel(packet_id))

    # -------------------------------------------------------------------- closing

    def reason_props(self, text: str) -> Properties:
        """A reason string, unless the client declined problem information at CONNECT."""
        if self.session is None:
            return {"reason_string": text[:200]} if text else {}
        return self.session.mqtt.reason_props(text)

    def protocol_failure(self, error: MQTTError) -> None:
        """Report a connection-fatal error with its reason code and close; logged once."""
        if self.closing:
            return
        log.info("closing %s (%s): %s", self.client_id or self.peer, self.peer, error,
                 extra={"CLIENT_ID": self.client_id, "REASON": error.reason.name})
        self.broker.stats.protocol_errors += 1
        if self.session is None and self.decoder.version == MQTT_5:
            self._write_now(codec.encode(Connack(error.reason, False,
                                                 self.reason_props(str(error.args[0]))), MQTT_5))
        elif self.session is None and self.decoder.version == MQTT_311 and \
                error.reason == Reason.CLIENT_IDENTIFIER_NOT_VALID:
            self._write_now(b"\x20\x02\x00\x02")
        else:
            self.disconnect(error.reason, str(error.args[0]))
            return
        self.close()

    def disconnect(self, reason: int, text: str = "") -> None:
        """Server-initiated DISCONNECT (5.0) followed by a close; a plain close for 3.1.1."""
        if self.closing:
            return
        if self.version == MQTT_5 and self.session is not None:
            self._write_now(codec.encode(Disconnect(reason, self.reason_props(text)), MQTT_5))
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closing:
            self._flush()
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping unsent output: `close` would wait for a client that does
        not read to take it, keeping the buffer (and the socket) forever. SO_LINGER 0 makes
        the kernel drop its own send buffer too (a reset, not a FIN queued behind megabytes)."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self._out.clear()
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            self.transport.abort()

    def describe(self) -> dict[str, Any]:
        """A row for the admin API's client list."""
        return {"client_id": self.client_id, "peer": self.peer, "username": self.username,
                "protocol": {3: "3.1", 4: "3.1.1", 5: "5.0"}.get(self.version, "?"),
                "listener": self.listener,
                "keepalive": self.session.mqtt.keepalive if self.session else 0,
                "connected_seconds": round(self.broker.loop.time() - self.connected_at, 1),
                "inflight": len(self.session.mqtt.inflight) if self.session else 0,
                "queued": len(self.session.backlog) if self.session else 0}
