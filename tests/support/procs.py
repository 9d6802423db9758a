"""Start and stop the real processes the tests talk to: edgeq and Debian's mosquitto.

Everything listens on 127.0.0.1 on a free port and is stopped by the test that started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _port_slice() -> range:
    """Ports this test process hands out: below the kernel's ephemeral range, so a client's
    outgoing connection can never hold a port a gateway must bind again at its restart, and a
    slice of their own for each xdist worker, so two workers never pick the same one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = (_PORTS.stop - _PORTS.start) // max(workers, 1)
    return range(_PORTS.start + worker * size, _PORTS.start + (worker + 1) * size)


_PORTS = range(20_000, 32_000)  # the ephemeral range starts at 32768 (ip_local_port_range)
_next_port: list[int] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to right now, from this process's slice,
    in turn (so one handed out lately is not handed out again soon)."""
    ports = _port_slice()
    if not _next_port:
        _next_port.append(ports.start + (os.getpid() % len(ports)))
    for _ in range(len(ports)):
        port = _next_port[0]
        _next_port[0] = port + 1 if port + 1 < ports.stop else ports.start
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until `host:port` accepts a TCP connection, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


@dataclass
class GatewayProcess:
    """A real `edgeq serve` child process on a free port, with its own data directory."""

    data_dir: Path
    config_text: str = ""
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.data_dir.parent / f"edgeq-{self.port}.toml"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gateway", "serve",
               "--listen", f"{self.host}:{self.port}", "--data-dir", str(self.data_dir),
               "--admin", "127.0.0.1:0"]
        if self.config_text:
            self.config_path.write_text(self.config_text)
            cmd += ["--config", str(self.config_path)]
        return cmd + self.extra_args

    def start(self, timeout: float = 15.0) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"edgeq-{self.port}.log"
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(self.command(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     env=env)
        log.close()
        try:
            wait_for_port(self.port, timeout, self.host)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"edgeq did not start:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait: the clean shutdown path."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> GatewayProcess:
        self.stop()
        return self.start()


@dataclass
class MosquittoProcess:
    """Debian's mosquitto on a free port, anonymous access, persistence off unless asked."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MosquittoProcess:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence_location {self.workdir}/\n{self.extra_config}\n"
        )
        log = (self.workdir / f"mosquitto-{self.port}.log").open("ab")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
