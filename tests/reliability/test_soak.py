"""Soak: a mixed workload for a long time, with the gateway's RSS and open descriptors sampled
from /proc; both must stay flat, and every acknowledged queued message must arrive.

The workload: QoS 1 jobs into a queue taken by two workers (one of them vanishes now and then, so
its jobs are redelivered), a last-value queue, QoS 0/1 telemetry to a wildcard subscriber, a
persistent session that keeps disconnecting, a `$SYS` reader, and a churn of short connections
that subscribe, set and clear retained messages, leave wills, disconnect or vanish, and now and
then send garbage.

Flat means (samples every `EDGEQ_SOAK_SAMPLE` seconds, the first 20 % are warm-up):
- RSS: the median of the last 10 % of samples is at most 10 % + 8 MiB above the median of the
  samples just after warm-up (20-30 %), and no sample exceeds that baseline by 25 % + 16 MiB;
- descriptors: once every client has gone, the gateway holds at most 2 more than before the
  workload started, and during the run never more than the workload's connections + 20.

`EDGEQ_SOAK_SECONDS` sets the duration (default 3600, in `make test-slow`).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, Publish, Will
from tests.reliability.conftest import assert_no_crash_in_log, env_int, open_fds, rss_kib
from tests.reliability.workload import Ledger, Worker, consume, lv_payload, produce
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess

CONFIG = """
[mqtt]
sys_interval = 2

[[queues]]
filter = "soak/jobs/#"
name = "soakjobs"
dispatch = "least_inflight"
max_deliveries = 0

[[queues]]
filter = "soak/lv/+"
name = "soaklv"
last_value_key = "json:k"
max_messages = 1000
overflow = "drop_oldest"
"""
LONG_LIVED = 7  # connections that last the whole run


@dataclass
class Samples:
    at: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def take(self, pid: int, t: float) -> None:
        self.at.append(t)
        self.rss_kib.append(rss_kib(pid))
        self.fds.append(open_fds(pid))

    def window(self, values: list[int], start: float, end: float) -> list[int]:
        n = len(values)
        return values[int(n * start):max(int(n * end), int(n * start) + 1)]


def churn(w: Worker, stop: threading.Event) -> None:
    """Short connections doing a bit of everything, forever."""
    rng = w.rng
    for n in count():
        if stop.is_set():
            return
        version = MQTT_5 if n % 2 else MQTT_311
        with RawClient(w.port, version) as c:
            will = Will(f"soak/wills/{n % 10}", b"gone", 1, False, {}) if n % 3 == 0 else None
            c.connect(f"churn-{n % 50}", clean_start=n % 4 != 0, will=will, keepalive=30)
            c.subscribe(f"soak/churn/{n % 7}/#", "soak/retained/+", qos=1)
            while True:  # retained messages come at once; take them all
                try:
                    c.receive(timeout=0.05)
                except TimeoutError:
                    break
            topic = f"soak/retained/{rng.randrange(100)}"
            payload = b"" if n % 5 == 0 else f"r{n}".encode()
            c.send_packet(Publish(topic, payload, 1, True, False, 1))
            while not isinstance(packet := c.read(), PubAck):  # its own copy may come first
                assert isinstance(packet, Publish)
                if packet.qos:
                    c.send_packet(PubAck(packet.packet_id))
            c.publish(f"soak/churn/{n % 7}/x", b"hi", qos=0)
            if n % 20 == 0:
                c.send(b"\xf0\x00")  # reserved packet type: a protocol error, then closed
            elif n % 2:
                c.disconnect()
            # else: vanish without DISCONNECT (wills fire)
        time.sleep(0.02)


def sys_reader(w: Worker, stop: threading.Event) -> None:
    with connected(w.port, "soak-sys", MQTT_311) as c:
        c.subscribe("$SYS/#", "soak/wills/#", qos=0)
        while not stop.is_set():
            try:
                c.receive(timeout=0.5)
            except TimeoutError:
                continue


def start_workload(w: Worker, stop: threading.Event, ledger: Ledger) -> list[threading.Thread]:
    numbers = count()

    def jobs() -> tuple[str, bytes, str]:
        n = next(numbers)
        kind = "sess" if n % 4 == 0 else "jobs"
        topic = f"soak/sess/{n % 3}" if kind == "sess" else f"soak/jobs/{n % 5}"
        return topic, f"{kind}:{n}".encode(), kind

    def last_values() -> tuple[str, bytes, str]:
        seq = ledger.next_seq()
        key = f"k{seq % 20}"
        return f"soak/lv/{key}", lv_payload(key, seq), "lv"

    def telemetry() -> tuple[str, bytes, str]:
        n = next(numbers)
        return f"soak/tele/{n % 50}", f"t{n}".encode(), "tele"

    bodies: dict[str, Callable[[], None]] = {
        "producer": lambda: produce(w, "soak-producer", MQTT_311, jobs, window=10, pace=0.002),
        "lv-producer": lambda: produce(w, "soak-lv", MQTT_5, last_values, window=4, pace=0.02),
        "telemetry": lambda: produce(w, "soak-telemetry", MQTT_5, telemetry, window=10,
                                     pace=0.004),
        "worker-1": lambda: consume(w, "soak-worker-1", MQTT_5, "$q/soak/jobs/#", "jobs"),
        "worker-2": lambda: consume(w, "soak-worker-2", MQTT_311, "$queue/soakjobs", "jobs",
                                    drop_every=5.0),
        "telemetry-sub": lambda: consume(w, "soak-tele-sub", MQTT_311, "soak/tele/#", "tele"),
        "keeper": lambda: consume(w, "soak-keeper", MQTT_311, "soak/sess/#", "sess",
                                  clean=False, subscribe=False, drop_every=3.0),
        "churn": lambda: churn(w, stop),
        "sys": lambda: sys_reader(w, stop),
    }
    threads = [threading.Thread(target=w.guard(name, body), name=name, daemon=True)
               for name, body in bodies.items()]
    for t in threads:
        t.start()
    return threads


def drain(port: int, ledger: Ledger) -> None:
    deadline = time.monotonic() + 60
    for client_id, topic_filter, kind, clean in (("soak-drain", "$q/soak/jobs/#", "jobs", True),
                                                 ("soak-keeper", "soak/sess/#", "sess", False)):
        with connected(port, client_id, MQTT_311, clean_start=clean) as client:
            if clean:  # the persistent session has its subscription already
                client.subscribe(topic_filter, qos=1)
            while missing := ledger.acked[kind] - set(ledger.received[kind]):
                left = deadline - time.monotonic()
                try:
                    ledger.received[kind][client.receive(timeout=max(left, 0.01)).payload] += 1
                except TimeoutError:
                    raise AssertionError(f"{len(missing)} acknowledged {kind} never delivered, "
                                         f"e.g. {sorted(missing)[:5]}") from None
            client.disconnect()
        assert not ledger.invented(kind)


def soak(tmp_path: Path, seconds: float, every: float) -> None:
    gw = GatewayProcess(data_dir=tmp_path / "var", config_text=CONFIG)
    gw.start()
    try:
        pid = gw.proc.pid if gw.proc else 0
        time.sleep(0.5)
        fds_idle = open_fds(pid)
        ledger, stop, never = Ledger(), threading.Event(), threading.Event()
        w = Worker(gw.port, ledger, stop, never, random.Random(1))
        with connected(gw.port, "soak-keeper", MQTT_311, clean_start=False) as keeper:
            keeper.subscribe("soak/sess/#", qos=1)  # before anything is published there
            keeper.disconnect()
        threads = start_workload(w, stop, ledger)
        samples = Samples()
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            samples.take(pid, now - start)
            assert gw.proc is not None and gw.proc.poll() is None, "the gateway died"
            assert not ledger.errors, ledger.errors
            time.sleep(min(every, max(0.0, seconds - (now - start))))
        samples.take(pid, time.monotonic() - start)
        stop.set()
        for t in threads:
            t.join(15)
            assert not t.is_alive(), f"{t.name} is stuck"
        assert not ledger.errors, ledger.errors
        drain(gw.port, ledger)
        deadline = time.monotonic() + 10
        while open_fds(pid) > fds_idle + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        fds_after = open_fds(pid)
        assert_no_crash_in_log(gw)
        report(samples, fds_idle, fds_after, ledger, seconds)
    finally:
        gw.stop()


def report(s: Samples, fds_idle: int, fds_after: int, ledger: Ledger, seconds: float) -> None:
    baseline = statistics.median(s.window(s.rss_kib, 0.2, 0.3))
    final = statistics.median(s.window(s.rss_kib, 0.9, 1.0))
    peak = max(s.rss_kib[int(len(s.rss_kib) * 0.2):])
    acked = {k: len(v) for k, v in ledger.acked.items()}
    print(f"\nsoak {seconds:.0f}s, {len(s.at)} samples: RSS start {s.rss_kib[0] // 1024} MiB, "
          f"after warm-up {baseline / 1024:.1f} MiB, end {final / 1024:.1f} MiB, peak "
          f"{peak / 1024:.1f} MiB; FDs idle {fds_idle}, start of run {s.fds[0]}, max "
          f"{max(s.fds)}, end of run {s.fds[-1]}, after clients left {fds_after}; "
          f"acknowledged {acked}, deliveries "
          f"{sum(sum(c.values()) for c in ledger.received.values())}")
    assert final <= baseline * 1.10 + 8 * 1024, "RSS grew during the soak"
    assert peak <= baseline * 1.25 + 16 * 1024, "RSS peaked far above its plateau"
    assert fds_after <= fds_idle + 2, "descriptors leaked"
    assert max(s.fds) <= fds_idle + LONG_LIVED + 20, "more descriptors than connections"


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_soak_mixed_workload_keeps_rss_and_fds_flat(tmp_path: Path) -> None:
    seconds = env_int("EDGEQ_SOAK_SECONDS", 3600)
    soak(tmp_path, seconds, env_int("EDGEQ_SOAK_SAMPLE", max(1, seconds // 240)))
