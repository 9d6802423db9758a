"""Offline backlog: 200,000 QoS 1 messages of 1 KiB wait for one persistent session, then it
comes back for all of them.

edgeq keeps such a backlog on disk (only a read-ahead in RAM); Mosquitto keeps it in RAM. The
rows give the drain rate, the broker CPU per drained message (the drain phase alone), the peak
RSS over the whole scenario and the publish rate. The load clients here are plain sockets (the
fast fixed-layout clients of `bench.clients` only carry 64-byte payloads), so the msg/s figures
may be client-bound; CPU per message is the broker's own and is not affected.
"""

from __future__ import annotations

import socket
import struct
import time

from bench import wire
from bench.blocking import BlockingClient
from bench.brokers import BrokerSetup
from bench.metrics import sample
from bench.scenarios.common import (
    Context,
    Outcome,
    Scenario,
    ScenarioError,
    apply_check,
    check_ids,
    running_broker,
)

TOPIC = "bench/backlog"
PAYLOAD_SIZE = 1024
WINDOW = 100  # unacknowledged QoS 1 publishes: edgeq's default Receive Maximum
SESSION = "backlog-sub"


def _payload(seq: int) -> bytes:
    return struct.pack("!Q", seq).ljust(PAYLOAD_SIZE, b".")


class _Reader:
    """Packets from a socket, a recv at a time; a deadline for the whole phase."""

    def __init__(self, sock: socket.socket, deadline: float, rest: bytes = b"") -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = rest
        self.pos = 0

    def packets(self) -> list[wire.Packet]:
        """Every complete packet now buffered, reading once more if there is none."""
        out: list[wire.Packet] = []
        while not out:
            while (got := wire.split_packet(self.buf, self.pos)) is not None:
                out.append(got[0])
                self.pos = got[1]
            if out:
                break
            if time.monotonic() > self.deadline:
                raise ScenarioError("timeout waiting for the broker")
            self.buf = self.buf[self.pos:]
            self.pos = 0
            self.sock.settimeout(max(self.deadline - time.monotonic(), 0.1))
            data = self.sock.recv(1 << 20)
            if not data:
                raise ScenarioError("the broker closed the connection")
            self.buf += data
        return out


def _fill(port: int, count: int, deadline: float) -> None:
    """`count` QoS 1 publishes, `WINDOW` unacknowledged at a time; every PUBACK must be 0."""
    client = BlockingClient(port, "backlog-pub")
    reader = _Reader(client.sock, deadline, client.buf)
    sent = acked = 0
    while acked < count:
        batch = [wire.publish(TOPIC, _payload(seq), qos=1, packet_id=seq % 65535 + 1)
                 for seq in range(sent, min(count, acked + WINDOW))]
        if batch:
            client.sock.sendall(b"".join(batch))
            sent += len(batch)
        for pkt in reader.packets():
            if pkt.kind != wire.PUBACK:
                raise ScenarioError(f"unexpected packet type {pkt.kind} while publishing")
            acked += 1
    client.disconnect()


def _drain(port: int, count: int, deadline: float) -> list[int]:
    """Resume the session and take `count` messages (PUBACKs sent per read); their numbers."""
    client = BlockingClient(port, SESSION, clean=False)
    sock, rest = client.detach()
    reader = _Reader(sock, deadline, rest)
    seqs: list[int] = []
    while len(seqs) < count:
        acks = []
        for pkt in reader.packets():
            if pkt.kind != wire.PUBLISH:
                raise ScenarioError(f"unexpected packet type {pkt.kind} while draining")
            msg = wire.decode_publish(pkt, wire.V311)
            seqs.append(struct.unpack_from("!Q", msg.payload)[0])
            acks.append(wire.puback(msg.packet_id))
        sock.sendall(b"".join(acks))
    sock.sendall(wire.DISCONNECT_PACKET)
    sock.close()
    return seqs


def run_backlog(ctx: Context, kind: str) -> list[Outcome]:
    count = ctx.size(200_000, 20_000)
    out = Outcome("backlog", kind)
    with running_broker(ctx, "backlog", kind, BrokerSetup()) as broker:
        setup = BlockingClient(broker.port, SESSION, clean=False)
        setup.subscribe(TOPIC, 1)
        setup.disconnect()
        start = sample(broker.pid)
        _fill(broker.port, count, time.monotonic() + ctx.timeout(240))
        filled = sample(broker.pid)
        seqs = _drain(broker.port, count, time.monotonic() + ctx.timeout(240))
        end = sample(broker.pid)
    drain_seconds = end.wall - filled.wall
    out.msg_s = count / drain_seconds if drain_seconds > 0 else None
    out.cpu_us = (end.cpu - filled.cpu) / count * 1e6
    out.peak_rss_mb = end.hwm_kib / 1024
    out.extra["publish msg/s"] = count / (filled.wall - start.wall)
    out.extra["RSS after fill MB"] = filled.rss_kib / 1024
    apply_check(out, check_ids(seqs, set(range(count))))
    return [out]


SCENARIOS = [
    Scenario("backlog", "offline backlog, 200,000 x 1 KiB QoS 1, one session",
             run_backlog,
             note="backlog: msg/s is the drain rate after reconnect and CPU/msg the broker's "
                  "CPU per drained message (drain phase only); peak RSS covers fill and drain; "
                  "plain-socket clients, so msg/s may be client-bound."),
]
