"""Measure the bytes edgeq's store writes per message, for the SD card wear estimate.

Runs `edgeq serve` (this repository's, from the running Python) with the image's storage
default, `synchronous = "full"` (or `--synchronous normal`), and one durable queue on `wear/#`,
on a data directory of a real block-device file system (not tmpfs: the kernel counts no device
writes there). Then, per
scenario, publishes QoS 1 messages (64-byte payload) and reads the broker's `write_bytes` from
/proc/PID/io: the bytes the process caused to be sent to the block device (SQLite's WAL, its
checkpoints into the database file, and the fsyncs), not counting the file system's own journal.

Scenarios:
- burst-stored: messages published as fast as one pipelined client can, no consumer (they stay
  queued on disk);
- burst-consumed: the same with a consumer connected, so each message is stored, delivered,
  acknowledged and deleted;
- trickle-consumed: a steady low rate (default 20 msg/s) with a consumer: the gateway's usual
  day, where each group commit holds one or two messages;
- idle: no message at all for the same time, connected clients only (what the broker writes
  on its own).

With `--loop` (root), the data directories are on an ext4 file system of their own, on a loop
device, mounted as the image mounts its root (`noatime,commit=30`): the sectors that device
received (/sys/block/loopN/stat, after a `syncfs`) are reported too. They include what
write_bytes does not: ext4's journal and metadata. That is the figure an SD card would see.

usage: python image/scripts/measure_wear.py [--messages N] [--trickle N] [--rate R]
                                           [--synchronous full|normal] [--loop] [--dir D]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PAYLOAD = b"x" * 64
TOPIC = "wear/sensor-1"
CONFIG = """
[storage]
synchronous = "{synchronous}"

[[queues]]
filter = "wear/#"
max_messages = 0
max_bytes = 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


class LoopDevice:
    """An ext4 file system of its own on a loop device, for the device's sector count."""

    def __init__(self, base: Path) -> None:
        self.backing = base / "fs.img"
        self.mountpoint = base / "mnt"
        subprocess.run(["truncate", "-s", "1G", str(self.backing)], check=True)
        subprocess.run(["mkfs.ext4", "-q", str(self.backing)], check=True)
        self.device = subprocess.run(["losetup", "--find", "--show", str(self.backing)],
                                     capture_output=True, text=True,
                                     check=True).stdout.strip()
        self.mountpoint.mkdir()
        subprocess.run(["mount", "-o", "noatime,commit=30", self.device, str(self.mountpoint)],
                       check=True)

    def written(self) -> int:
        """Bytes the file system has sent to the device, once it has flushed everything."""
        subprocess.run(["sync", "-f", str(self.mountpoint)], check=True)
        stat = Path(f"/sys/block/{Path(self.device).name}/stat").read_text().split()
        return int(stat[6]) * 512

    def close(self) -> None:
        subprocess.run(["umount", str(self.mountpoint)], check=False)
        subprocess.run(["losetup", "-d", self.device], check=False)


@dataclass
class Broker:
    proc: subprocess.Popen[bytes]
    port: int

    @classmethod
    def start(cls, work: Path, synchronous: str) -> Broker:
        port = free_port()
        conf = work / "edgeq.toml"
        conf.write_text(CONFIG.format(synchronous=synchronous))
        cmd = [sys.executable, "-m", "gateway", "serve", "--listen", f"127.0.0.1:{port}",
               "--data-dir", str(work / "data"), "--config", str(conf),
               "--admin", f"127.0.0.1:{free_port()}"]
        proc = subprocess.Popen(cmd, stdout=(work / "edgeq.log").open("wb"),
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return cls(proc, port)
            except OSError:
                time.sleep(0.2)
        proc.kill()
        raise RuntimeError(f"edgeq did not listen; see {work / 'edgeq.log'}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def client(port: int, name: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(200)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


class Consumer:
    """A queue consumer counting what it got (paho acknowledges each QoS 1 delivery)."""

    def __init__(self, port: int) -> None:
        self.received = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wear-consumer",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("$q/wear/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received += 1

    def wait_for(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.received < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumer got {self.received} of {count}")
            time.sleep(0.1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(port: int, count: int, rate: float | None) -> None:
    producer = client(port, "wear-producer")
    infos = []
    began = time.monotonic()
    for i in range(count):
        if rate:
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        infos.append(producer.publish(TOPIC, PAYLOAD, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    producer.disconnect()
    producer.loop_stop()


def scenario(base: Path, name: str, count: int, rate: float | None, consume: bool,
             synchronous: str, loop: LoopDevice | None) -> int:
    work = (loop.mountpoint if loop else base) / name
    work.mkdir()
    broker = Broker.start(work, synchronous)
    try:
        consumer = Consumer(broker.port) if consume else None
        time.sleep(1)
        device_before = loop.written() if loop else 0
        before = write_bytes(broker.proc.pid)
        began = time.monotonic()
        if count:
            publish(broker.port, count, rate)
        elif rate:
            time.sleep(rate)
        if consumer:
            consumer.wait_for(count)
        time.sleep(3)  # the last group commit and acknowledgement writes
        written = write_bytes(broker.proc.pid) - before
        seconds = time.monotonic() - began
        device = loop.written() - device_before if loop else 0
        if consumer:
            consumer.close()
    finally:
        broker.stop()
    on_device = f", device {device} bytes" if loop else ""
    if not count:
        print(f"{name} ({synchronous}): {written} bytes written in {seconds:.0f}s{on_device}",
              flush=True)
        return written
    per_message = written / count
    if loop:
        on_device += f" ({device / count:.0f} B/message)"
    print(f"{name} ({synchronous}): {count} messages in {seconds:.0f}s, {written} bytes written, "
          f"{per_message:.0f} B/message, {per_message * 1e6 / 1e9:.2f} GB per million messages"
          f"{on_device}", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="per burst scenario")
    parser.add_argument("--trickle", type=int, default=600, help="messages of the slow scenario")
    parser.add_argument("--rate", type=float, default=20.0, help="msg/s of the slow scenario")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="storage.synchronous (the image's default is full)")
    parser.add_argument("--loop", action="store_true",
                        help="data on a loop device of its own: count its sectors too (root)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the data directories go (a disk, not tmpfs)")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="edgeq-wear-", dir=args.dir))
    loop = None
    try:
        os.chdir(base)
        loop = LoopDevice(base) if args.loop else None
        sync = args.synchronous
        scenario(base, "burst-stored", args.messages, None, False, sync, loop)
        scenario(base, "burst-consumed", args.messages, None, True, sync, loop)
        scenario(base, "trickle-consumed", args.trickle, args.rate, True, sync, loop)
        scenario(base, "idle", 0, args.trickle / args.rate, True, sync, loop)
    finally:
        if loop:
            loop.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
