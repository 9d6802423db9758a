"""Producers and consumers that keep a ledger: what was sent, acknowledged and received.

Each runs on its own thread over a `RawClient` until `stop` is set or the connection dies (the
gateway was killed). Payloads are unique, so the ledger can tell a lost message (acknowledged,
never delivered, not stored) from an invented one (delivered, never sent) and count duplicates
(at-least-once redelivery after a crash, which is allowed).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, Publish
from tests.support.clients import RawClient

# What a client sees when the gateway dies under it.
GONE = (OSError, AssertionError, TimeoutError)


@dataclass
class Ledger:
    """Every message by kind ("jobs", "sess", "lv"): sent, acknowledged, received."""

    sent: dict[str, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    acked: dict[str, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    received: dict[str, Counter[bytes]] = field(default_factory=lambda: defaultdict(Counter))
    lv_sent: dict[str, int] = field(default_factory=dict)  # key -> newest seq sent
    lv_acked: dict[str, int] = field(default_factory=dict)  # key -> newest seq acknowledged
    lv_seq: int = 0
    seq: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def invented(self, kind: str) -> set[bytes]:
        return set(self.received[kind]) - self.sent[kind]

    def duplicates(self) -> int:
        return sum(n - 1 for c in self.received.values() for n in c.values() if n > 1)


def lv_payload(key: str, seq: int) -> bytes:
    return json.dumps({"k": key, "seq": seq}).encode()


def lv_seq(payload: bytes) -> tuple[str, int]:
    data = json.loads(payload)
    return data["k"], data["seq"]


@dataclass
class Worker:
    """Shared by every thread of one run: the gateway port, the ledger, the stop signal."""

    port: int
    ledger: Ledger
    stop: threading.Event
    dying: threading.Event  # set just before the gateway is killed: errors are expected
    rng: random.Random

    def guard(self, name: str, body: Callable[[], None]) -> Callable[[], None]:
        """Run `body`; a connection failure is fine once the gateway is being killed."""
        def run() -> None:
            try:
                body()
            except GONE as e:
                if not self.dying.is_set() and not self.stop.is_set():
                    self.ledger.errors.append(f"{name}: {type(e).__name__}: {e}")
        return run


def produce(w: Worker, client_id: str, version: int, make: Callable[[], tuple[str, bytes, str]],
            window: int = 20, pace: float = 0.0) -> None:
    """Pipelined QoS 1 publishes of `make()` -> (topic, payload, kind) until stopped."""
    ledger = w.ledger
    with RawClient(w.port, version) as client:
        assert client.connect(client_id).reason_code == 0
        waiting: dict[int, tuple[bytes, str]] = {}
        pid = 0
        while not w.stop.is_set():
            while len(waiting) < window and not w.stop.is_set():
                topic, payload, kind = make()
                pid = pid % 65535 + 1
                ledger.sent[kind].add(payload)
                waiting[pid] = (payload, kind)
                client.send_packet(Publish(topic, payload, 1, False, False, pid))
                if pace:
                    time.sleep(pace)
            ack = client.expect(PubAck, 10)
            payload, kind = waiting.pop(ack.packet_id)
            if ack.reason_code >= 0x80:
                ledger.errors.append(f"{client_id}: PUBACK 0x{ack.reason_code:02X}")
                continue
            ledger.acked[kind].add(payload)
            if kind == "lv":
                key, seq = lv_seq(payload)
                with ledger.lock:
                    ledger.lv_acked[key] = max(ledger.lv_acked.get(key, 0), seq)


def consume(w: Worker, client_id: str, version: int, topic_filter: str, kind: str, *,
            clean: bool = True, subscribe: bool = True, drop_every: float = 0.0) -> None:
    """Receive and acknowledge until stopped; with `drop_every`, vanish now and then without
    acknowledging the last message (a consumer crash), then come back."""
    first = True
    while not w.stop.is_set():
        with RawClient(w.port, version) as client:
            assert client.connect(client_id, clean_start=clean).reason_code == 0
            if subscribe and (clean or first):  # a resumed session keeps it (and its
                client.subscribe(topic_filter, qos=1)  # messages may come before a SUBACK)
            first = False
            until = time.monotonic() + (w.rng.uniform(0.1, drop_every) if drop_every else 1e9)
            while not w.stop.is_set() and time.monotonic() < until:
                try:
                    message = client.receive(timeout=0.2, ack=False)
                except TimeoutError:
                    continue
                w.ledger.received[kind][message.payload] += 1
                if time.monotonic() < until - 0.05 or not drop_every:
                    client.send_packet(PubAck(message.packet_id))
        if drop_every:
            time.sleep(w.rng.uniform(0.02, 0.2))


VERSIONS = (MQTT_311, MQTT_5)
