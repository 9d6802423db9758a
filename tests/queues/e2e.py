"""Helpers for the queue end-to-end tests: the `edgeq` CLI as a subprocess, the admin API over
urllib, and bounded waits. Every wait has a deadline; nothing here sleeps open-ended."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from gateway.mqtt.packets import MQTT_311, PubAck, Publish
from gateway.mqtt.properties import Properties
from tests.support.clients import connected
from tests.support.procs import REPO, GatewayProcess

EDGEQ = Path(sys.executable).with_name("edgeq")
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 5.0, what: str = "it") -> T:
    """Poll `check` every 50 ms until it returns something truthy; AssertionError at timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen in {timeout}s (last: {last!r})")


# ------------------------------------------------------------------------------ CLI

@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def edgeq_queue(data_dir: Path, *args: str) -> Run:
    """`edgeq queue ARGS --data-dir DATA_DIR`, as a user types it."""
    result = subprocess.run([str(EDGEQ), "queue", *args, "--data-dir", str(data_dir)], cwd=REPO,
                            capture_output=True, text=True, timeout=30, check=False)
    return Run(result.returncode, result.stdout, result.stderr)


def edgeq_ok(data_dir: Path, *args: str) -> str:
    run = edgeq_queue(data_dir, *args)
    assert run.returncode == 0 and not run.stderr, f"edgeq queue {args}: {run}"
    return run.stdout


def table(stdout: str) -> dict[str, dict[str, str]]:
    """`edgeq queue list` output as {queue name: {column: cell}}."""
    header, *rows = [line.split() for line in stdout.splitlines() if line.strip()]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


# ------------------------------------------------------------------------------ admin API

@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Admin:
    """The admin API of one running gateway, found through its `admin.json`."""

    def __init__(self, gw: GatewayProcess, timeout: float = 10.0) -> None:
        self.data_dir = gw.data_dir
        self.url, self.token = "", ""
        wait_until(self._answers, timeout, f"the admin API of {gw.data_dir}")

    def _answers(self) -> bool:
        """admin.json is read again each time: after a restart it first names the old port."""
        try:
            found = json.loads((self.data_dir / "admin.json").read_text())
        except (OSError, ValueError):
            return False
        self.url, self.token = found["url"], found["token"]
        try:
            return self.request("GET", "/api/v1/stats").status == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | None = None,
                token: str | None = "") -> Reply:
        """Any request; `token=None` sends no Authorization header, "" the right token."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                return Reply(response.status, response.headers["content-type"], response.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.headers["content-type"], e.read())

    def get(self, path: str) -> Any:
        reply = self.request("GET", "/api/v1/" + path)
        assert reply.status == 200, reply
        return reply.json()

    def queue(self, name: str) -> dict[str, Any]:
        """`GET /api/v1/queues/NAME`: stats, settings, consumers, dead letters."""
        return self.get("queues/" + quote(name, safe=""))  # type: ignore[no-any-return]

    def stats(self, name: str) -> dict[str, Any]:
        return self.queue(name)["stats"]  # type: ignore[no-any-return]

    def metrics(self) -> str:
        reply = self.request("GET", "/metrics", token=None)
        assert reply.status == 200, reply
        return reply.body.decode()


# ------------------------------------------------------------------------------ MQTT

def publish(port: int, topic: str, *payloads: bytes | str, version: int = MQTT_311,
            qos: int = 1, properties: Properties | None = None) -> list[int]:
    """Publish each payload at `qos` from a fresh producer; the PUBACK reason codes."""
    codes: list[int] = []
    with connected(port, f"producer-{time.monotonic_ns()}", version) as producer:
        for i, payload in enumerate(payloads, start=1):
            data = payload.encode() if isinstance(payload, str) else payload
            producer.send_packet(Publish(topic, data, qos, False, False, i if qos else 0,
                                         properties or {}))
            if qos == 1:
                codes.append(producer.expect(PubAck).reason_code)
        if qos == 0:  # a round trip, so the broker has read every QoS 0 publish
            producer.subscribe("e2e/sync", qos=0)
    return codes
