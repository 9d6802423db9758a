"""Crash consistency: producers and consumers at QoS 1 on queues, a last-value queue and a
persistent session, while the gateway is SIGKILLed at random moments and restarted.

After each kill the store left behind (a copy of the database and its WAL, so the gateway's own
crash recovery still runs on restart) is compared with the ledger of the clients:
- every PUBACKed message was delivered before the kill or is still stored (so it will be);
- nothing stored or delivered was never sent;
- the last-value queue holds one message per key, no older than the newest acknowledged one.
A final drain after the last cycle proves that what is stored is really delivered.

A power cut is simulated too, on an ext4 loop device stopped with EXT4_IOC_SHUTDOWN: with
`storage.synchronous = "full"` nothing acknowledged may be lost; with `normal` (which promises
only survival of a process crash) the loss is reported.

`EDGEQ_CRASH_CYCLES` (default 3) and `EDGEQ_CRASH_CYCLES_SLOW` (default 100, run by
`make test-slow` once with `storage.synchronous = "normal"` and once with `"full"`) set the
number of kill cycles, `EDGEQ_POWER_CUTS` (1) and `EDGEQ_POWER_CUTS_SLOW` (20) the power cuts;
`EDGEQ_CRASH_SEED` (random by default, printed) makes a run repeatable.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
import threading
import time
from collections import defaultdict
from itertools import count
from pathlib import Path

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311
from tests.reliability.conftest import assert_no_crash_in_log, env_int, power_cut, remount
from tests.reliability.workload import Ledger, Worker, consume, lv_payload, lv_seq, produce
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess

CONFIG = """
[[queues]]
filter = "jobs/#"
name = "jobs"
dispatch = "least_inflight"
max_deliveries = 0
ack_timeout = 0

[[queues]]
filter = "lv/#"
name = "lv"
last_value_key = "json:k"
max_deliveries = 0
"""
LV_KEYS = [f"k{i}" for i in range(16)]


class Stored:
    """What a killed gateway left on disk, read from a copy of the store."""

    def __init__(self, data_dir: Path, scratch: Path) -> None:
        scratch.mkdir(exist_ok=True)
        for old in scratch.iterdir():
            old.unlink()
        for name in ("edgeq.db", "edgeq.db-wal"):
            if (data_dir / name).exists():
                shutil.copy(data_dir / name, scratch / name)
        conn = sqlite3.connect(scratch / "edgeq.db")
        try:
            rows = conn.execute("SELECT queue, payload, lv_key FROM queue_messages").fetchall()
            self.sess = {bytes(p) for (p,) in conn.execute(
                "SELECT payload FROM session_messages WHERE client_id = 'keeper'")}
        finally:
            conn.close()
        self.jobs = {bytes(p) for q, p, _ in rows if q == "jobs"}
        self.lv: dict[str, list[bytes]] = defaultdict(list)
        for q, p, key in rows:
            if q == "lv":
                self.lv[key].append(bytes(p))
        self.other = sorted({q for q, _, _ in rows if q not in ("jobs", "lv")})


def check(ledger: Ledger, stored: Stored, cycle: int) -> int:
    """Assert the promises against what is on disk; how many acknowledged messages were checked."""
    where = f"cycle {cycle}"
    assert not ledger.errors, f"{where}: a client failed while the gateway was up: {ledger.errors}"
    assert not stored.other, f"{where}: unexpected queues {stored.other}"
    for kind, on_disk in (("jobs", stored.jobs), ("sess", stored.sess)):
        lost = ledger.acked[kind] - set(ledger.received[kind]) - on_disk
        assert not lost, f"{where}: {len(lost)} acknowledged {kind} lost, e.g. {sorted(lost)[:3]}"
        assert not ledger.invented(kind), f"{where}: {kind} delivered but never sent"
        assert on_disk <= ledger.sent[kind], f"{where}: {kind} stored but never sent"
    for key, payloads in stored.lv.items():
        assert len(payloads) == 1, f"{where}: last-value key {key} holds {len(payloads)}"
        stored_key, seq = lv_seq(payloads[0])
        assert stored_key == key
        assert payloads[0] in ledger.sent["lv"], f"{where}: {payloads[0]!r} never sent"
        assert seq >= ledger.lv_acked.get(key, 0), (
            f"{where}: key {key} holds seq {seq}, older than acknowledged "
            f"{ledger.lv_acked[key]}")
    missing = {k for k in ledger.lv_acked if k not in stored.lv}
    assert not missing, f"{where}: last-value keys {missing} lost their acknowledged value"
    return sum(len(ledger.acked[k]) for k in ("jobs", "sess", "lv"))


def setup_keeper(gw: GatewayProcess) -> None:
    """The persistent session: subscribed once; a QoS 1 probe proves the subscription is
    committed (its PUBACK waits for every earlier write)."""
    with connected(gw.port, "keeper", MQTT_311, clean_start=False) as keeper:
        keeper.subscribe("sess/#", qos=1)
        with connected(gw.port, "prober", MQTT_311) as prober:
            prober.publish("sess/probe", b"probe", qos=1)
        assert keeper.receive().payload == b"probe"
        keeper.disconnect()


def run_cycle(gw: GatewayProcess, ledger: Ledger, rng: random.Random, cycle: int) -> None:
    """Start the clients, SIGKILL the gateway at a random moment, wait for the clients."""
    stop, dying = threading.Event(), threading.Event()
    w = Worker(gw.port, ledger, stop, dying, rng)
    numbers = count()

    def jobs_and_sessions() -> tuple[str, bytes, str]:
        n = next(numbers)
        kind = "jobs" if n % 3 else "sess"
        return (f"{kind}/{n % 4}", f"{kind}:{cycle}:{n}".encode(), kind)

    def last_values() -> tuple[str, bytes, str]:
        key = rng.choice(LV_KEYS)
        seq = ledger.next_seq()
        with ledger.lock:
            ledger.lv_sent[key] = seq
        return ("lv/dev", lv_payload(key, seq), "lv")

    bodies = {
        "producer": lambda: produce(w, f"producer-{cycle}", MQTT_311, jobs_and_sessions),
        "lv-producer": lambda: produce(w, f"lv-producer-{cycle}", MQTT_5, last_values, window=8),
        "worker-1": lambda: consume(w, "worker-1", MQTT_311, "$q/jobs/#", "jobs"),
        "worker-2": lambda: consume(w, "worker-2", MQTT_5, "$q/jobs/#", "jobs", drop_every=0.5),
        "keeper": lambda: consume(w, "keeper", MQTT_311, "sess/#", "sess", clean=False,
                                  subscribe=False, drop_every=0.8),
    }
    threads = [threading.Thread(target=w.guard(name, body), name=name, daemon=True)
               for name, body in bodies.items()]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.05, 1.5))
    dying.set()
    gw.kill()
    stop.set()
    for t in threads:
        t.join(15)
        assert not t.is_alive(), f"{t.name} is stuck"


def drain(gw: GatewayProcess, ledger: Ledger, stored: Stored) -> None:
    """After the last cycle: every acknowledged message arrives; the last-value queue gives
    exactly what the store held, one message per key."""
    deadline = time.monotonic() + 60
    for client_id, topic_filter, kind, clean in (("drain-jobs", "$q/jobs/#", "jobs", True),
                                                 ("keeper", "", "sess", False)):
        with connected(gw.port, client_id, MQTT_311, clean_start=clean) as client:
            if topic_filter:
                client.subscribe(topic_filter, qos=1)
            while ledger.acked[kind] - set(ledger.received[kind]):
                left = deadline - time.monotonic()
                assert left > 0, f"{kind}: acknowledged messages never delivered"
                ledger.received[kind][client.receive(timeout=left).payload] += 1
            client.disconnect()
    with RawClient(gw.port, MQTT_311) as client:
        client.connect("drain-lv")
        client.subscribe("$q/lv/#", qos=1)
        got = [client.receive().payload for _ in range(len(stored.lv))]
        client.expect_silence(0.5)
    assert sorted(got) == sorted(p for ps in stored.lv.values() for p in ps)
    for kind in ("jobs", "sess"):
        assert not ledger.invented(kind)


def crash_loop(gw: GatewayProcess, cycles: int, scratch: Path) -> None:
    seed = env_int("EDGEQ_CRASH_SEED", random.randrange(1 << 30))
    rng = random.Random(seed)
    ledger = Ledger()
    setup_keeper(gw)
    checked = 0
    stored: Stored | None = None
    for cycle in range(1, cycles + 1):
        if gw.proc is None:
            gw.start()
        run_cycle(gw, ledger, rng, cycle)
        stored = Stored(gw.data_dir, scratch)
        try:
            checked += check(ledger, stored, cycle)
        except AssertionError:
            print(f"crash loop failed at cycle {cycle} (EDGEQ_CRASH_SEED={seed})")
            raise
    assert stored is not None
    gw.start()
    drain(gw, ledger, stored)
    assert_no_crash_in_log(gw)
    total = {k: len(v) for k, v in ledger.acked.items()}
    print(f"\ncrash loop: {cycles} SIGKILL cycles (EDGEQ_CRASH_SEED={seed}); acknowledged "
          f"messages {total}, {checked} acknowledgement checks against the store, "
          f"{sum(sum(c.values()) for c in ledger.received.values())} deliveries checked, "
          f"{ledger.duplicates()} redelivered duplicates (allowed)")


def test_sigkill_loop_loses_and_invents_nothing(tmp_path: Path) -> None:
    gw = GatewayProcess(data_dir=tmp_path / "var", config_text=CONFIG)
    try:
        gw.start()
        crash_loop(gw, env_int("EDGEQ_CRASH_CYCLES", 3), tmp_path / "scratch")
    finally:
        gw.stop()


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_sigkill_loop_long(tmp_path: Path, synchronous: str) -> None:
    config = f'{CONFIG}\n[storage]\nsynchronous = "{synchronous}"\n'
    gw = GatewayProcess(data_dir=tmp_path / "var", config_text=config)
    try:
        gw.start()
        crash_loop(gw, env_int("EDGEQ_CRASH_CYCLES_SLOW", 100), tmp_path / "scratch")
    finally:
        gw.stop()


# ---------------------------------------------------------------------------- power cut

def power_cut_cycle(ext4: Path, synchronous: str, seconds: float) -> tuple[int, int]:
    """Publish QoS 1 into a queue on an ext4 file system, cut its power, mount it again:
    (acknowledged before the cut, of those lost)."""
    # min_free_bytes 0: the default 64 MiB reserve is more than the whole 64 MiB image
    config = f'{CONFIG}\n[storage]\nmin_free_bytes = 0\nsynchronous = "{synchronous}"\n'
    gw = GatewayProcess(data_dir=ext4, config_text=config)  # its log stays outside the mount
    ledger, stop, dying = Ledger(), threading.Event(), threading.Event()
    w = Worker(gw.port, ledger, stop, dying, random.Random(0))
    numbers = count()
    try:
        gw.start()
        thread = threading.Thread(target=w.guard("producer", lambda: produce(
            w, "camera", MQTT_311, lambda: ("jobs/cam", f"frame-{next(numbers)}".encode(),
                                            "jobs"))), daemon=True)
        thread.start()
        time.sleep(seconds)
        dying.set()
        power_cut(ext4)
        acked = set(ledger.acked["jobs"])  # nothing is acknowledged after the cut
        stop.set()
        gw.kill()
        thread.join(10)
        remount(ext4)
        gw.start()
        seen: set[bytes] = set()
        with connected(gw.port, "auditor", MQTT_311) as auditor:
            auditor.subscribe("$q/jobs/#", qos=1)
            with contextlib.suppress(TimeoutError):
                while not acked <= seen:
                    seen.add(auditor.receive(timeout=3).payload)
        assert seen <= ledger.sent["jobs"], "a message was delivered that was never sent"
        return len(acked), len(acked - seen)
    finally:
        gw.stop()
        for name in ("edgeq.db", "edgeq.db-wal", "edgeq.db-shm", "edgeq.running"):
            (ext4 / name).unlink(missing_ok=True)


def power_cuts(ext4: Path, cycles: int) -> None:
    totals = {"normal": [0, 0], "full": [0, 0]}
    for _ in range(cycles):
        for synchronous in ("full", "normal"):
            acked, lost = power_cut_cycle(ext4, synchronous, 1.5)
            totals[synchronous][0] += acked
            totals[synchronous][1] += lost
    full_acked, full_lost = totals["full"]
    normal_acked, normal_lost = totals["normal"]
    print(f"\npower cuts: {cycles} per setting; synchronous=full: {full_acked} acknowledged, "
          f"{full_lost} lost; synchronous=normal: {normal_acked} acknowledged, {normal_lost} "
          "lost (allowed: normal promises only process crashes)")
    assert full_acked and full_lost == 0, "synchronous=full lost acknowledged messages"


def test_power_cut_loses_nothing_acknowledged_with_synchronous_full(ext4: Path) -> None:
    power_cuts(ext4, env_int("EDGEQ_POWER_CUTS", 1))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_power_cuts_long(ext4: Path) -> None:
    power_cuts(ext4, env_int("EDGEQ_POWER_CUTS_SLOW", 20))
