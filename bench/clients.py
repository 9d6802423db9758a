"""Load clients: a publisher and a subscriber over one non-blocking socket each.

A client never blocks: the worker loop (`bench.workers`) calls `flush()` while it `wants_write()`
and `on_readable()` when its socket has data. Publishers send pre-encoded batches (see
`bench.records`) under two windows: unacknowledged QoS 1 messages, and messages sent but not yet
received by any subscriber of the scenario (the end-to-end window, shared between processes
through `Flow`), so that neither broker buffers an unbounded backlog and latency is that of a
loaded broker, not of a queue the generator built.
"""

from __future__ import annotations

import socket
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from bench import wire
from bench.blocking import BlockingClient
from bench.records import PublishBatcher, PublishScanner, count_puback_run, unpack_payload

RECV_SIZE = 1 << 18
QOS0_STALL_S = 0.2  # at QoS 0 a lost message never arrives: stop waiting for it after this


@dataclass(frozen=True, slots=True)
class PublisherSpec:
    client_id: str
    publisher: int  # goes into the message id
    topics: tuple[str, ...]
    qos: int
    count: int
    version: int = wire.V311
    batch: int = 100
    # Unacknowledged QoS 1 messages: edgeq's default Receive Maximum, which it enforces on
    # 3.1.1 clients too (0x93 and a close when exceeded). The same for both brokers.
    ack_window: int = 100
    rate: float = 0.0  # messages per second; 0: as fast as the windows allow


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    client_id: str
    topic_filter: str | None  # None: resume a persistent session without subscribing
    qos: int
    topic_len: int
    version: int = wire.V311
    clean: bool = True
    receive_maximum: int | None = None
    late: bool = False  # connect when the measured window starts (drains)

    def open(self, port: int) -> BlockingClient:
        expiry = None if self.clean or self.version != wire.V5 else 3600
        client = BlockingClient(port, self.client_id, version=self.version, clean=self.clean,
                                receive_maximum=self.receive_maximum, session_expiry=expiry)
        if self.topic_filter is not None:
            client.subscribe(self.topic_filter, self.qos)
        return client


@dataclass
class Flow:
    """Counters shared by all worker processes of a phase (one writer per slot)."""

    sent: Any  # multiprocessing RawArray('q'), one slot per publisher
    received: Any  # RawArray('q'), one slot per subscriber
    window: int  # largest sent-minus-received allowed; 0 disables the end-to-end window

    def total_received(self) -> int:
        return int(sum(self.received))

    def in_transit(self) -> int:
        return int(sum(self.sent) - sum(self.received))


class Publisher:
    """Sends `spec.count` messages as fast as the windows allow and counts the PUBACKs."""

    def __init__(self, spec: PublisherSpec, port: int, slot: int, flow: Flow) -> None:
        self.spec, self.slot, self.flow = spec, slot, flow
        self.batcher = PublishBatcher([t.encode() for t in spec.topics], spec.qos, spec.version,
                                      spec.publisher)
        client = BlockingClient(port, spec.client_id, version=spec.version)
        self.sock, self.inbuf = client.detach()
        self.sock.setblocking(False)
        self.next_seq = 0
        self.acked = 0
        self.pending = memoryview(b"")
        self.blocked = False
        self.written_off = 0
        self.stalled_since: float | None = None
        self.started: float | None = None

    def _room(self) -> int:
        room = self.spec.count - self.next_seq
        if self.spec.rate:
            now = time.monotonic()
            if self.started is None:
                self.started = now
            room = min(room, int((now - self.started) * self.spec.rate) + 1 - self.next_seq)
        if self.spec.qos:
            room = min(room, self.spec.ack_window - (self.next_seq - self.acked))
        if self.flow.window:
            room = min(room, self.flow.window - self.flow.in_transit() + self.written_off)
        return min(room, self.spec.batch)

    def wants_write(self) -> bool:
        return bool(self.pending) or self.next_seq < self.spec.count

    def flush(self) -> bool:
        """Send what the windows allow; True if any byte went out."""
        if not self.pending:
            n = self._room()
            if n <= 0:
                self._maybe_write_off()
                return False
            self.stalled_since = None
            self.pending = memoryview(self.batcher.encode(self.next_seq, n, time.monotonic_ns()))
            self.next_seq += n
            self.flow.sent[self.slot] = self.next_seq
        try:
            sent = self.sock.send(self.pending)
        except BlockingIOError:
            self.blocked = True
            return False
        self.blocked = sent < len(self.pending)
        self.pending = self.pending[sent:]
        return True

    def _maybe_write_off(self) -> None:
        """At QoS 0, stop waiting for messages the broker dropped (counted as lost later)."""
        if self.spec.qos or not self.flow.window or self.next_seq >= self.spec.count:
            return
        now = time.monotonic()
        if self.stalled_since is None:
            self.stalled_since = now
        elif now - self.stalled_since > QOS0_STALL_S:
            self.written_off = self.flow.in_transit()
            self.stalled_since = None

    def on_readable(self) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError(f"broker closed publisher {self.spec.client_id}")
        buf = self.inbuf + data if self.inbuf else data
        pos = 0
        while True:
            end = count_puback_run(buf, pos)
            if end > pos:
                self.acked += (end - pos) // 4
                pos = end
            got = wire.split_packet(buf, pos)
            if got is None:
                break
            pkt, pos = got
            if pkt.kind == wire.PUBACK:
                self._check_puback(pkt)
            elif pkt.kind != wire.PINGRESP:
                raise wire.ProtocolError(f"publisher got unexpected packet type {pkt.kind}")
        self.inbuf = buf[pos:]

    def _check_puback(self, pkt: wire.Packet) -> None:
        if len(pkt.body) > 2 and pkt.body[2] >= 0x80:
            raise wire.ProtocolError(f"PUBACK reason code {pkt.body[2]:#04x}")
        self.acked += 1

    def done(self) -> bool:
        return (self.next_seq >= self.spec.count and not self.pending
                and (not self.spec.qos or self.acked >= self.spec.count))


@dataclass
class Received:
    """Everything a subscriber got: message ids, and send times with their receive time."""

    ids: array[int] = field(default_factory=lambda: array("Q"))
    batches: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    last_ns: int = 0  # CLOCK_MONOTONIC of the last message

    def add(self, ids: tuple[int, ...], sent: tuple[int, ...], now_ns: int) -> None:
        self.ids.extend(ids)
        self.batches.append((now_ns, sent))
        self.last_ns = now_ns

    def latencies(self, limit: int = 200_000) -> array[int]:
        """Receive minus send time in ns, evenly sampled down to at most `limit` values."""
        out = array("q")
        for now_ns, sent in self.batches:
            out.extend(now_ns - s for s in sent)
        step = max(1, len(out) // limit)
        return out[::step]


class Subscriber:
    """Receives, records and (at QoS 1) acknowledges benchmark messages."""

    def __init__(self, spec: SubscriberSpec, slot: int, flow: Flow) -> None:
        self.spec, self.slot, self.flow = spec, slot, flow
        self.scanner = PublishScanner(spec.topic_len, spec.qos, spec.version)
        self.received = Received()
        self.count = 0
        self.sock: socket.socket | None = None
        self.inbuf = b""
        self.pending = memoryview(b"")
        self.blocked = False

    def connect(self, port: int) -> None:
        self.sock, early = self.spec.open(port).detach()
        self.sock.setblocking(False)
        if early:
            self._consume(early)

    def wants_write(self) -> bool:
        return bool(self.pending)

    def flush(self) -> bool:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.pending)
        except BlockingIOError:
            self.blocked = True
            return False
        self.blocked = sent < len(self.pending)
        self.pending = self.pending[sent:]
        return True

    def on_readable(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError(f"broker closed subscriber {self.spec.client_id}")
        self._consume(self.inbuf + data if self.inbuf else data)

    def _consume(self, buf: bytes) -> None:
        now = time.monotonic_ns()
        pos, acks = 0, []
        while True:
            end = self.scanner.match_run(buf, pos)
            if end > pos:
                run = buf[pos:end]
                ids, sent = self.scanner.decode_run(run)
                self.received.add(ids, sent, now)
                self.count += len(ids)
                if self.spec.qos:
                    acks.append(self.scanner.pubacks(run))
                pos = end
            got = wire.split_packet(buf, pos)
            if got is None:
                break
            pkt, pos = got
            acks.append(self._slow_path(pkt, now))
        self.inbuf = buf[pos:]
        self.flow.received[self.slot] = self.count
        if any(acks):
            self.pending = memoryview(bytes(self.pending) + b"".join(acks))

    def _slow_path(self, pkt: wire.Packet, now: int) -> bytes:
        """A packet outside the fixed layout; returns the PUBACK to send, if any."""
        if pkt.kind == wire.PINGRESP:
            return b""
        if pkt.kind != wire.PUBLISH:
            raise wire.ProtocolError(f"subscriber got unexpected packet type {pkt.kind}")
        msg = wire.decode_publish(pkt, self.spec.version)
        mid, sent = unpack_payload(msg.payload)
        self.received.add((mid,), (sent,), now)
        self.count += 1
        return wire.puback(msg.packet_id) if msg.qos == 1 else b""
