"""Run the light firmware, unmodified, in the real MicroPython interpreter and watch it.

`Device` starts `node runner/mpyrun.mjs` (MicroPython 1.27 compiled to WebAssembly, with
blocking TCP through a Node worker thread) on a staged firmware tree and a config.json, and
collects its console lines. The `machine` and `network` test doubles in mplib/ record what the
hardware did in a JSON-lines file (`HwLog`); the Wi-Fi access point is a control file the test
rewrites; the board's flash (files the firmware writes) survives a restart of the `Device`.
`Observer` is a real MQTT client (paho) that watches the light's topics. `SilentServer` and
`FreezableProxy` are the network faults: a peer that accepts and never answers, and a link that
goes half-open (nothing passes either way, nothing is closed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.device import tool

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner" / "mpyrun.mjs"
NODE_MODULES = HERE / "node_modules"
WASM_PACKAGE = NODE_MODULES / "@micropython" / "micropython-webassembly-pyscript"
DEVICE_ID = "light-1"
PWM_PINS = (25, 26, 27)
RGB = tuple[int, int, int]
GREEN: RGB = (0, 255, 0)
RED: RGB = (255, 0, 0)
BLUE: RGB = (0, 0, 255)
WHITE: RGB = (255, 255, 255)


def ensure_node_modules() -> None:
    """Install the pinned interpreter package (npm ci) when `make node-deps` has not."""
    if (WASM_PACKAGE / "micropython.mjs").exists():
        return
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"npm ci in {HERE} failed:\n{proc.stderr[-2000:]}")


def run_micropython(code: str, *, copies: dict[str, Path] | None = None,
                    timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `code` in the interpreter (with the board support modules); {device_path: host}."""
    ensure_node_modules()
    args = ["node", str(RUNNER)]
    for dest, host in (copies or {}).items():
        args += ["--copy", f"{host}:{dest}"]
    return subprocess.run([*args, "-c", code], capture_output=True, text=True, timeout=timeout,
                          check=False)


def device_config(port: int, **overrides: Any) -> dict[str, Any]:
    """A config.json for a light talking to 127.0.0.1:`port`, quick to retry for tests."""
    cfg: dict[str, Any] = {
        "device_id": DEVICE_ID,
        "wifi": {"ssid": "lab", "password": "secret"},
        "gateway": {"host": "127.0.0.1", "port": port, "timeout_ms": 2000},
        "led": {"driver": "pwm", "pins": list(PWM_PINS)},
        "watchdog_ms": 5000,
        "reconnect_min_ms": 100,
        "reconnect_max_ms": 800,
        "poll_ms": 20,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def stage_firmware(out: Path, *, compiled: bool = False) -> Path:
    """The tree `edgeq device deploy` copies to a board (sources, or .mpy when compiled)."""
    tool.build(out, compile_modules=compiled)
    return out


@dataclass
class HwLog:
    """What the machine/network doubles recorded, one JSON object per line."""

    path: Path

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [e for e in out if kind is None or e["ev"] == kind]

    def colors(self, pins: tuple[int, int, int] = PWM_PINS) -> list[RGB]:
        """Every colour a PWM RGB LED showed, in order (one entry per full r, g, b update)."""
        duty = dict.fromkeys(pins, 0)
        shown: list[RGB] = []
        for e in self.events("pwm"):
            duty[e["pin"]] = e["duty_u16"]
            if e["pin"] == pins[2]:
                r, g, b = (round(duty[p] / 257) for p in pins)
                shown.append((r, g, b))
        return shown

    def pixels(self) -> list[RGB]:
        """The colour of the first NeoPixel after each write (the wire order is G, R, B)."""
        out: list[RGB] = []
        for e in self.events("bitstream"):
            data = bytes.fromhex(e["data"])
            out.append((data[1], data[0], data[2]))
        return out

    def watchdog_expiries(self) -> list[dict[str, Any]]:
        return self.events("wdt_expired")


@dataclass
class Device:
    """One emulated ESP32 running the firmware tree `tree` with `config`."""

    tree: Path
    config: dict[str, Any]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    boots: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hw = HwLog(self.workdir / "hw.jsonl")
        self.wifi_path = self.workdir / "wifi.json"
        self.flash_dir = self.workdir / "flash"
        self.set_wifi(up=True)

    def set_wifi(self, *, up: bool) -> None:
        """Bring the emulated access point up or down (the light sees it at its next poll)."""
        ap = {"ssid": "lab", "password": "secret", "up": up, "join_ms": 30}
        tmp = self.wifi_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ap))
        tmp.replace(self.wifi_path)

    def start(self, extra_files: dict[str, str] | None = None) -> Device:
        """Power the board on: boot.py, then main.py, as a board does."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        ensure_node_modules()
        cfg_path = self.workdir / "config.json"
        cfg_path.write_text(json.dumps(self.config))
        args = ["node", str(RUNNER), "--copy", f"{self.tree}:/",
                "--copy", f"{cfg_path}:/config.json", "--flash", str(self.flash_dir)]
        for name, text in (extra_files or {}).items():
            host = self.workdir / name.strip("/").replace("/", "_")
            host.write_text(text)
            args += ["--copy", f"{host}:{name}"]
        env = {**os.environ, "MPYRUN_HWLOG": str(self.hw.path), "MPYRUN_WIFI": str(self.wifi_path),
               **self.env}
        self.boots += 1
        self.lines.append(f"--- boot {self.boots} ---")
        stderr = (self.workdir / "stderr.txt").open("a")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                     env=env, start_new_session=True)
        stderr.close()
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def console(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def stderr(self) -> str:
        path = self.workdir / "stderr.txt"
        return path.read_text() if path.exists() else ""

    def count(self, pattern: str) -> int:
        """How many console lines (of all boots) match the regular expression `pattern`."""
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `count` console lines match `pattern` (a regular expression)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for line in self.lines if rx.search(line)) < count:
                left = deadline - time.monotonic()
                exited = self.proc is not None and self.proc.poll() is not None
                if left <= 0 or exited:
                    why = "exited" if exited else f"not seen after {timeout:g} s"
                    raise AssertionError(
                        f"{pattern!r} x{count}: {why}\n--- console ---\n" + "\n".join(self.lines)
                        + f"\n--- stderr ---\n{self.stderr()}")
                self._cond.wait(min(left, 0.1))

    def wait_exit(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return rc

    def kill(self) -> None:
        """Pull the power: no DISCONNECT, so the gateway publishes the last will."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Observer:
    """A real MQTT 3.1.1 client subscribed to `filters`, recording every message it gets.

    It reconnects (and subscribes again) by itself after a broker restart.
    """

    def __init__(self, port: int, filters: list[str], host: str = "127.0.0.1") -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._filters = filters
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError(f"observer: no SUBACK from {host}:{port}")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        client.subscribe([(f, 1) for f in self._filters])

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def mark(self) -> int:
        """A position for wait_for(since=...): only messages received after now."""
        with self._cond:
            return len(self.messages)

    def wait_for(self, topic: str, predicate: Callable[[Message], bool] = lambda m: True, *,
                 since: int = 0, timeout: float = 10.0) -> Message:
        """The first message on `topic` (already received or coming) that satisfies predicate."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[since:]:
                    if m.topic == topic and predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"{m.topic} {m.payload!r}" for m in self.messages)
                    raise AssertionError(f"no matching message on {topic} after {timeout:g} s;"
                                         f" seen:\n{seen}")
                self._cond.wait(min(left, 0.1))

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def observing(port: int, filters: list[str]) -> Iterator[Observer]:
    obs = Observer(port, filters)
    try:
        yield obs
    finally:
        obs.close()


def publish(port: int, payload: bytes, *, command_type: str = "set-color",
            topic: str = f"lights/{DEVICE_ID}/commands") -> None:
    """Publish any bytes as a command (QoS 1, MQTT 5, user property command_type)."""
    tool.send_command("127.0.0.1", port, topic, payload, command_type=command_type)


class SilentServer:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._srv.getsockname()[1])
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._srv.close()
        for conn in self.accepted:
            conn.close()


class FreezableProxy:
    """A TCP relay from 127.0.0.1:port to `target`; freeze() makes every link half-open.

    Frozen, it stops relaying in both directions and closes nothing, as a router that reboots
    or a NAT entry that expires: neither end learns that the other is gone.
    """

    def __init__(self, target: int) -> None:
        self._target = target
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._srv.getsockname()[1])
        self.connections = 0
        self._frozen = threading.Event()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._srv.accept()
            except OSError:
                return
            if self._frozen.is_set():  # the path is dead for new connections too
                self._socks.append(down)
                continue
            self.connections += 1
            up = socket.create_connection(("127.0.0.1", self._target))
            self._socks += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

    def _relay(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                if not self._frozen.is_set():
                    dst.close()
                return
            if self._frozen.is_set():
                continue  # swallowed, and the link stays open
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._srv.close()
        for s in self._socks:
            s.close()


def send(port: int, command_type: str, value: str, *, device: str = DEVICE_ID,
         topic: str = "lights/{id}/commands", mqtt_version: str = "5",
         command_id: str | None = None) -> None:
    """Send a command the way a cloud application does: `edgeq device send ...`."""
    argv = ["send", device, command_type, value, "--port", str(port), "--topic", topic,
            "--mqtt", mqtt_version]
    if command_id is not None:
        argv += ["--id", command_id]
    assert tool.main(argv) == 0


def send_raw(port: int, payload: str, *, command_type: str = "set-color",
             topic: str = "lights/{id}/commands") -> None:
    argv = ["send", DEVICE_ID, command_type, "--raw", payload, "--port", str(port),
            "--topic", topic]
    assert tool.main(argv) == 0


def state_is(**expected: Any) -> Callable[[Message], bool]:
    """A predicate: the retained state JSON has these values."""
    def check(m: Message) -> bool:
        doc = m.json()
        return all(doc.get(k) == v for k, v in expected.items())
    return check
