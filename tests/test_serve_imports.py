"""A running `edgeq serve` imports only what it uses (issue 17, idle RSS): no TUI, demo or
device tooling, no admin HTTP client, no bridge MQTT client without a bridge, no WebSocket
library without a `ws` listener, no argon2 without a password file, no sqlite_utils (and the
click/pluggy/dateutil it pulls)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.mqtt.packets import PingResp
from tests.support.clients import connected
from tests.support.procs import REPO, free_port, wait_for_port

# `edgeq serve` in a process of its own; when the test creates `dump`, a thread writes the
# names in sys.modules to `modules` and stops the gateway the way systemd does (SIGTERM).
SERVE = """
import json, os, signal, sys, threading, time
from pathlib import Path
from gateway.cli import main

dump, modules = Path(sys.argv[1]), Path(sys.argv[2])

def watch():
    while not dump.exists():
        time.sleep(0.05)
    modules.write_text(json.dumps(sorted(sys.modules)))
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
sys.exit(main(sys.argv[3:]))
"""

FORBIDDEN = (
    "tui", "textual", "gateway.demo", "gateway.device",
    "gateway.checkconfig", "gateway.admin.client", "urllib.request", "http.client", "email",
    "gateway.bridge.bridge", "gateway.bridge.client", "paho", "gateway.broker.websocket",
    "wsproto", "sqlite_utils", "click", "pluggy", "dateutil", "esptool", "serial", "argon2",
)


def serve_modules(tmp_path: Path, *args: str) -> list[str]:
    """sys.modules of a gateway that served one MQTT client (CONNECT, PINGREQ)."""
    port = free_port()
    dump, modules = tmp_path / "dump", tmp_path / "modules.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(dump), str(modules), "serve",
         "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "var"),
         "--admin", f"127.0.0.1:{free_port()}", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        with connected(port, "footprint") as client:
            client.send(b"\xc0\x00")
            client.expect(PingResp)
        dump.touch()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    loaded: list[str] = json.loads(modules.read_text())
    return loaded


def test_serve_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    loaded = serve_modules(tmp_path)

    assert "gateway.broker.server" in loaded
    assert "gateway.admin.api" in loaded  # the admin API is on by default
    unwanted = [name for name in loaded if name.split(".")[0] in FORBIDDEN
                or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert unwanted == []
