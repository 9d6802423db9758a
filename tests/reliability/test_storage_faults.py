"""Storage faults: a full disk, a store that turns read-only, a damaged or truncated file, and a
store written by an older edgeq.

At run time a store that cannot be written refuses new queued messages (PUBACK 0x80 for 5.0
producers; 3.1.1 producers, which have no negative acknowledgement, are disconnected so that they
resend) and keeps serving pub/sub; the failure is logged once and the recovery too. At start a
store that cannot be opened or read ends the process with one readable line and exit code 1.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, Publish
from gateway.store.db import MIGRATIONS, SCHEMA_VERSION
from tests.reliability.conftest import Tmpfs, assert_no_crash_in_log, remount
from tests.support.clients import ServerClosed, connected
from tests.support.procs import REPO, GatewayProcess

QUEUE = """
[[queues]]
filter = "q/#"
name = "q"
"""
# Tests on a tiny file system: the default free-space reserve (storage.min_free_bytes, 64 MiB)
# would refuse every message (tests/reliability/test_disk_budget.py covers the reserve).
NO_RESERVE = "\n[storage]\nmin_free_bytes = 0\n"
Gateways = Callable[..., GatewayProcess]


def fill_queue(port: int, payload_size: int = 1000, limit: int = 20_000
               ) -> tuple[list[bytes], int]:
    """QoS 1 publishes from a 5.0 producer until one is refused: (acknowledged, reason)."""
    acked: list[bytes] = []
    with connected(port, "filler", MQTT_5) as producer:
        for i in range(limit):
            payload = f"{i:08d}".encode().ljust(payload_size, b".")
            ack = producer.publish("q/fill", payload, qos=1, packet_id=i % 65535 + 1)
            assert isinstance(ack, PubAck)
            if ack.reason_code >= 0x80:
                return acked, ack.reason_code
            acked.append(payload)
    raise AssertionError(f"{limit} messages stored: the disk never filled")


def publish_v5(port: int, topic: str, payload: bytes) -> int:
    with connected(port, f"one-{time.monotonic_ns()}", MQTT_5) as producer:
        ack = producer.publish(topic, payload, qos=1)
        assert isinstance(ack, PubAck)
        return ack.reason_code


def assert_311_producer_is_disconnected_without_ack(port: int) -> None:
    with connected(port, "old-producer", MQTT_311) as producer:
        producer.send_packet(Publish("q/old", b"not stored" * 100, 1, False, False, 1))
        with pytest.raises(ServerClosed):
            producer.read(5)


def assert_pubsub_works(port: int) -> None:
    with connected(port, "listener", MQTT_5) as sub, connected(port, "talker", MQTT_5) as pub:
        sub.subscribe("live/#", qos=1)
        ack = pub.publish("live/x", b"still here", qos=1)
        assert isinstance(ack, PubAck) and ack.reason_code == 0
        pub.publish("live/y", b"qos0 too")
        assert [sub.receive().payload for _ in range(2)] == [b"still here", b"qos0 too"]


def drain(port: int, expected: list[bytes], timeout: float = 30) -> None:
    """Every message in `expected` arrives from queue q (others may too)."""
    missing = set(expected)
    deadline = time.monotonic() + timeout
    with connected(port, "drainer", MQTT_311) as consumer:
        consumer.subscribe("$q/q/#", qos=1)
        while missing:
            missing.discard(consumer.receive(timeout=max(deadline - time.monotonic(), 0.1))
                            .payload)


def lines(gw: GatewayProcess, needle: str) -> list[str]:
    return [line for line in gw.log().splitlines() if needle in line]


def run_to_exit(gw: GatewayProcess, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Start `gw` expecting it to give up: its exit code and output."""
    gw.data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(gw.command(), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def assert_refused_start(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], errors[0]


# ---------------------------------------------------------------------------- disk full

def test_disk_full_refuses_queued_messages_keeps_pubsub_and_recovers(
        tmpfs: Callable[[str], Tmpfs], gateways: Gateways) -> None:
    disk = tmpfs("2m")
    ballast = disk.path / "ballast"
    ballast.write_bytes(b"\0" * 512 * 1024)  # freed later, as an operator would clean up
    gw = gateways(disk.path, QUEUE + NO_RESERVE)

    acked, reason = fill_queue(gw.port)
    assert reason == 0x80 and len(acked) > 10
    assert publish_v5(gw.port, "q/more", b"x" * 1000) == 0x80
    assert_311_producer_is_disconnected_without_ack(gw.port)
    assert_pubsub_works(gw.port)
    failures = lines(gw, "store write failed")
    assert len(failures) == 1 and "database or disk is full" in failures[0], failures

    ballast.unlink()
    assert publish_v5(gw.port, "q/after", b"stored again") == 0
    assert lines(gw, "store writes succeed again")
    drain(gw.port, [*acked, b"stored again"])
    assert gw.stop() == 0
    assert_no_crash_in_log(gw)


def test_disk_full_at_shutdown_exits_cleanly_and_keeps_what_was_acknowledged(
        tmpfs: Callable[[str], Tmpfs], gateways: Gateways) -> None:
    disk = tmpfs("2m")
    ballast = disk.path / "ballast"
    ballast.write_bytes(b"\0" * 256 * 1024)
    gw = gateways(disk.path, QUEUE + NO_RESERVE)
    acked, _ = fill_queue(gw.port)
    assert gw.stop() == 0  # SIGTERM with the disk still full
    assert_no_crash_in_log(gw)
    ballast.unlink()
    gw.start()
    drain(gw.port, acked)
    assert_no_crash_in_log(gw)


# ---------------------------------------------------------------------------- read-only

def trigger_fs_error(mount: Path) -> None:
    source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], capture_output=True,
                            text=True, check=True).stdout.strip()
    trigger = Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"{trigger} is missing: this kernel cannot inject an ext4 error")
    trigger.write_text("edgeq reliability test\n")
    options = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", str(mount)],
                             capture_output=True, text=True, check=True).stdout
    assert options.startswith("ro") or "emergency_ro" in options, options


def test_store_turning_read_only_refuses_queued_messages_and_keeps_pubsub(
        ext4: Path, gateways: Gateways) -> None:
    # full: every acknowledged message is on the device before the file system fails
    gw = gateways(ext4, QUEUE + NO_RESERVE + "synchronous = \"full\"\n")  # logs beside it
    before = [f"before-{i}".encode() for i in range(20)]
    for payload in before:
        assert publish_v5(gw.port, "q/x", payload) == 0

    trigger_fs_error(ext4)
    assert publish_v5(gw.port, "q/x", b"refused") == 0x80
    assert_311_producer_is_disconnected_without_ack(gw.port)
    assert_pubsub_works(gw.port)
    failures = lines(gw, "store write failed")
    assert len(failures) == 1, failures
    assert gw.stop() == 0
    assert_no_crash_in_log(gw)

    # the operator repairs the file system; everything acknowledged is still there
    remount(ext4)
    gw.start()
    drain(gw.port, before)


def test_read_only_store_at_start_is_one_clear_error(tmpfs: Callable[[str], Tmpfs],
                                                     gateways: Gateways) -> None:
    disk = tmpfs("4m")
    gw = gateways(disk.path, QUEUE + NO_RESERVE)
    assert publish_v5(gw.port, "q/x", b"kept") == 0
    assert gw.stop() == 0
    disk.remount("ro")
    assert_refused_start(run_to_exit(gw), "cannot open the store", "read-only file system")
    disk.remount("rw")
    gw.start()
    drain(gw.port, [b"kept"])


# ---------------------------------------------------------------------------- damaged files

def make_store(gw: GatewayProcess, messages: int = 3000) -> list[bytes]:
    """Fill queue q with `messages` 200-byte messages and stop cleanly."""
    payloads = [f"{i:06d}".encode().ljust(200, b"-") for i in range(messages)]
    with connected(gw.port, "maker", MQTT_5) as producer:
        for start in range(0, messages, 50):
            batch = payloads[start:start + 50]
            for n, payload in enumerate(batch):
                producer.send_packet(Publish("q/x", payload, 1, False, False, n + 1))
            for _ in batch:
                assert producer.expect(PubAck).reason_code == 0
    assert gw.stop() == 0
    return payloads


def scribble(path: Path, offset: int, size: int = 8192) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(os.urandom(size))


def test_damaged_header_is_one_clear_error(tmp_path: Path, gateways: Gateways) -> None:
    gw = gateways(tmp_path / "var", QUEUE)
    make_store(gw, 100)
    scribble(gw.data_dir / "edgeq.db", 0, 100)
    assert_refused_start(run_to_exit(gw), "edgeq.db", "file is not a database")


def test_truncated_store_is_one_clear_error(tmp_path: Path, gateways: Gateways) -> None:
    gw = gateways(tmp_path / "var", QUEUE)
    make_store(gw)
    db = gw.data_dir / "edgeq.db"
    os.truncate(db, db.stat().st_size // 2)
    assert_refused_start(run_to_exit(gw), "edgeq.db", "malformed")


def test_damaged_page_read_at_start_is_one_clear_error(tmp_path: Path,
                                                       gateways: Gateways) -> None:
    gw = gateways(tmp_path / "var", QUEUE)
    make_store(gw, 100)
    scribble(gw.data_dir / "edgeq.db", 4096)  # the pages right after the schema
    assert_refused_start(run_to_exit(gw), "edgeq.db", "restore a backup")


def test_damage_found_while_serving_stops_writes_and_is_caught_at_the_next_start(
        tmp_path: Path, gateways: Gateways) -> None:
    """A clean stop skips the full check at start, so damage deep in the file shows when the
    page is read: from then on writes stop (0x80), pub/sub goes on, and the next start runs
    `quick_check` and refuses the file."""
    gw = gateways(tmp_path / "var", QUEUE)
    make_store(gw)
    db = gw.data_dir / "edgeq.db"
    scribble(db, db.stat().st_size // 2)
    gw.start()
    with connected(gw.port, "reader", MQTT_311) as consumer:
        consumer.subscribe("$q/q/#", qos=1)
        with pytest.raises(TimeoutError):
            while True:  # the first window arrives; the damaged rows never do
                consumer.receive(timeout=3)
    assert lines(gw, "the store is damaged")
    assert publish_v5(gw.port, "q/x", b"refused") == 0x80
    assert_pubsub_works(gw.port)
    assert gw.stop() == 0
    assert_no_crash_in_log(gw)
    assert (gw.data_dir / "edgeq.running").exists(), "the next start must check the file"
    assert_refused_start(run_to_exit(gw), "edgeq.db", "malformed", "restore a backup")


def test_an_empty_store_file_starts_empty_with_a_warning(tmp_path: Path,
                                                         gateways: Gateways) -> None:
    gw = gateways(tmp_path / "var", QUEUE)
    make_store(gw, 10)
    os.truncate(gw.data_dir / "edgeq.db", 0)
    gw.start()
    assert lines(gw, "is empty: starting with an empty store")
    assert publish_v5(gw.port, "q/x", b"new") == 0


# ---------------------------------------------------------------------------- schema versions

def make_v1_store(db_path: Path) -> None:
    """A store as the first edgeq release wrote it: the v1 migration only, with a queued
    message, a persistent session owed one message, and a retained message."""
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version=1")
    now = time.time()
    conn.execute("INSERT INTO queue_messages (id, queue, topic, payload, qos, deliveries, "
                 "created, size) VALUES (1, 'q', 'q/old', x'6F6C642D6A6F62', 1, 0, ?, 12)",
                 (now,))
    conn.execute("INSERT INTO sessions VALUES ('old-device', 4294967295, ?, ?)",
                 (now, '[["old/#", 1, false, false, 0, 0]]'))
    conn.execute("INSERT INTO session_messages (id, client_id, topic, payload, qos, retain, "
                 "created, origin) VALUES (1, 'old-device', 'old/cmd', x'6F776564', 1, 0, ?, "
                 "'someone')", (now,))
    conn.execute("INSERT INTO retained (topic, payload, qos, created) VALUES "
                 "('old/state', x'6F6E', 0, ?)", (now,))
    conn.close()


def test_a_v1_store_is_migrated_and_keeps_its_data(tmp_path: Path, gateways: Gateways) -> None:
    data_dir = tmp_path / "var"
    make_v1_store(data_dir / "edgeq.db")
    gw = gateways(data_dir, QUEUE)
    upgraded = lines(gw, "store upgraded from schema version 1")
    assert upgraded and f"to {SCHEMA_VERSION}" in upgraded[0]
    drain(gw.port, [b"old-job"])
    with connected(gw.port, "old-device", MQTT_311, clean_start=False) as device:
        assert device.receive().payload == b"owed"
        device.subscribe("old/state")
        retained = device.receive()
        assert (retained.topic, retained.payload, retained.retain) == ("old/state", b"on", True)
    assert gw.stop() == 0
    with sqlite3.connect(data_dir / "edgeq.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    gw.start()  # and the migrated store opens again without a migration
    assert len(lines(gw, "store upgraded")) == 1


def test_a_store_from_a_newer_edgeq_is_refused(tmp_path: Path, gateways: Gateways) -> None:
    gw = gateways(tmp_path / "var", QUEUE)
    assert gw.stop() == 0
    with sqlite3.connect(gw.data_dir / "edgeq.db") as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    assert_refused_start(run_to_exit(gw), f"schema version {SCHEMA_VERSION + 1}", "upgrade edgeq")

