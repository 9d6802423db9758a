"""Start and stop the two brokers under test on free loopback ports, and time their start.

Mosquitto gets a generated config (anonymous, unlimited connections and queued messages, TCP
no-delay like asyncio's); edgeq gets a generated `--config` (its defaults, an unlimited session
queue like Mosquitto's, the scenario's `storage.synchronous`: "normal" unless it asks for
edgeq's default "full", because Mosquitto does not fsync per message either; the scenario's queue
declarations) and an admin port of its own. Each
scenario starts a fresh broker with a fresh directory so that peak RSS (VmHWM) is per scenario.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.blocking import probe_ready

REPO = Path(__file__).resolve().parents[1]
MOSQUITTO = "mosquitto"
EDGEQ = "edgeq"
BROKERS = (MOSQUITTO, EDGEQ)
READY_TIMEOUT = 20.0


class BrokerError(Exception):
    """The broker did not start, or died during a scenario."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class QueueDecl:
    """One `[[queues]]` entry of the edgeq config."""

    filter: str
    dispatch: str = "least_inflight"
    max_messages: int = 2_000_000
    overflow: str = "block"
    last_value_key: str | None = None

    def toml(self) -> str:
        lines = ["[[queues]]", f'filter = "{self.filter}"', f'dispatch = "{self.dispatch}"',
                 f"max_messages = {self.max_messages}", f'overflow = "{self.overflow}"']
        if self.last_value_key:
            lines.append(f'last_value_key = "{self.last_value_key}"')
        return "\n".join(lines) + "\n"


@dataclass
class BrokerSetup:
    """What a scenario asks of the broker it runs against."""

    queues: list[QueueDecl] = field(default_factory=list)
    persistence: bool = False  # mosquitto: save the in-memory store on exit, load it on start
    synchronous: str = "normal"  # edgeq: "full" fsyncs every commit (before the PUBACK)


def mosquitto_config(port: int, workdir: Path, persistence: bool) -> str:
    return (
        f"listener {port} 127.0.0.1\n"
        "max_connections -1\n"
        "allow_anonymous true\n"
        "set_tcp_nodelay true\n"
        "max_inflight_messages 100\n"
        "max_queued_messages 0\n"
        f"persistence {'true' if persistence else 'false'}\n"
        f"persistence_location {workdir}/\n"
        # Run as whoever runs the benchmark: as root, mosquitto would otherwise switch to the
        # `mosquitto` user, which cannot write its persistence file under bench/results/.
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\n"
        "connection_messages false\n"
    )


# Like Mosquitto's `max_queued_messages 0` (and its default `max_queued_bytes 0`): a persistent
# session keeps everything it is sent (edgeq's defaults, 100,000 messages and 64 MiB, would drop
# most of the backlog scenario's 200,000 x 1 KiB).
EDGEQ_MAX_QUEUED = 0


def edgeq_config(setup: BrokerSetup) -> str:
    """edgeq's defaults, except the session backlog caps, the scenario's fsync policy and
    queues."""
    mqtt = (f"[mqtt]\nmax_queued_messages = {EDGEQ_MAX_QUEUED}\n"
            f"max_queued_bytes = {EDGEQ_MAX_QUEUED}\n")
    storage = f'[storage]\nsynchronous = "{setup.synchronous}"\n'
    return "\n".join([mqtt, storage, *(q.toml() for q in setup.queues)])


@dataclass
class Broker:
    """One broker child process of a scenario."""

    kind: str
    workdir: Path
    setup: BrokerSetup
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)  # edgeq's admin API, off the default
    proc: subprocess.Popen[bytes] | None = None
    ready_seconds: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}.log"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BrokerError(f"{self.kind} is not running")
        return self.proc.pid

    def command(self) -> list[str]:
        if self.kind == MOSQUITTO:
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(mosquitto_config(self.port, self.workdir, self.setup.persistence))
            binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            return [binary, "-c", str(conf)]
        conf = self.workdir / "edgeq.toml"
        conf.write_text(edgeq_config(self.setup))
        return [sys.executable, "-m", "gateway", "serve", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.workdir / "data"), "--config", str(conf),
                "--admin", f"127.0.0.1:{self.admin_port}"]

    def start(self) -> Broker:
        """Start and wait until CONNECT is answered; `ready_seconds` is spawn to CONNACK."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            began = time.monotonic()
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        proc = self.proc
        if not probe_ready(self.port, READY_TIMEOUT, lambda: proc.poll() is None):
            exited = proc.poll()
            self.stop()
            why = f"exited with code {exited}" if exited is not None else \
                f"not ready after {READY_TIMEOUT:.0f}s"
            raise BrokerError(f"{self.kind} {why}: {self.log_tail()}")
        self.ready_seconds = time.monotonic() - began
        return self

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BrokerError(f"{self.kind} exited (code {code}): {self.log_tail()}")

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a clean shutdown that saves state), SIGKILL after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
