"""Updating the application code over MQTT: a bundle verified by its SHA-256 before it replaces
anything, a trial that ends when the new code connects, and a rollback when it does not.
Real MicroPython, real edgeq gateway; the board's flash survives each reset."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.device import tool
from tests.conftest import GatewayFactory
from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import (
    DEVICE_ID,
    Message,
    device_config,
    observing,
    publish,
    send,
    state_is,
)
from tests.support.procs import GatewayProcess

UPDATE = f"lights/{DEVICE_ID}/update"
STATUS = f"lights/{DEVICE_ID}/status"
STATE = f"lights/{DEVICE_ID}/state"
ONLINE = r"mqtt: subscribed to \$q/lights/light-1/commands; online"
RESET = 75  # the machine double's exit status for machine.reset()
UPDATES_ON = {"topics": {"update": "lights/{id}/update"}}


@pytest.fixture
def gw(gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(extra_args=["--admin", "127.0.0.1:0"])


def _light_package(tmp_path: Path, version: str, broken: bool = False) -> Path:
    """A copy of device_fw/light that says it is `version` (and fails at import if broken)."""
    pkg = tmp_path / version / "light"
    shutil.copytree(tool.FW_DIR / "light", pkg)
    init = pkg / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.2.0"', f'__version__ = "{version}"'))
    if broken:
        app = pkg / "app.py"
        app.write_text('raise RuntimeError("broken on purpose")\n' + app.read_text())
    return pkg


def _event(kind: str, **fields: object) -> Callable[[Message], bool]:
    def check(m: Message) -> bool:
        if not m.payload.startswith(b"{"):
            return False
        doc = m.json()
        return bool(doc.get("event") == kind and all(doc.get(k) == v for k, v in fields.items()))
    return check


def test_an_update_is_verified_installed_and_kept_once_it_connects(
        gw: GatewayProcess, device_factory: DeviceFactory, tmp_path: Path) -> None:
    bundle = tool.make_bundle(_light_package(tmp_path, "0.2.1"), compile_modules=False)
    dev = device_factory(device_config(gw.port, **UPDATES_ON)).start()
    with observing(gw.port, [STATUS]) as obs:
        dev.wait_for(ONLINE)
        publish(gw.port, bundle, topic=UPDATE)
        obs.wait_for(STATUS, _event("update-installed", version="0.2.1"))
        assert dev.wait_exit() == RESET
        dev.start()
        obs.wait_for(STATUS, _event("update-confirmed", version="0.2.1"))
    assert "edgeq light 0.2.1; reset cause" in dev.console
    dev.kill()
    dev.start()  # still the update after another power cycle
    dev.wait_for(ONLINE, count=3)
    assert dev.count(r"edgeq light 0\.2\.1;") == 2, dev.console
    with observing(gw.port, [STATE]) as obs:
        send(gw.port, "set-color", "green")
        obs.wait_for(STATE, state_is(color="#00ff00"))


def test_a_bundle_that_does_not_match_its_hash_is_refused_and_nothing_changes(
        gw: GatewayProcess, device_factory: DeviceFactory, tmp_path: Path) -> None:
    bundle = bytearray(tool.make_bundle(_light_package(tmp_path, "0.2.1"), compile_modules=False))
    bundle[-10] ^= 0x01  # one bit flipped in the code
    dev = device_factory(device_config(gw.port, **UPDATES_ON)).start()
    with observing(gw.port, [STATUS, STATE]) as obs:
        dev.wait_for(ONLINE)
        publish(gw.port, bytes(bundle), topic=UPDATE)
        report = obs.wait_for(STATUS, _event("update-rejected")).json()
        assert "SHA-256" in report["error"]
        send(gw.port, "set-color", "green")
        obs.wait_for(STATE, state_is(color="#00ff00"))
    assert dev.proc is not None and dev.proc.poll() is None
    assert not (dev.flash_dir / "app").exists() or not any((dev.flash_dir / "app").rglob("*.py"))


def test_an_update_that_cannot_start_is_rolled_back_after_three_tries(
        gw: GatewayProcess, device_factory: DeviceFactory, tmp_path: Path) -> None:
    bundle = tool.make_bundle(_light_package(tmp_path, "0.2.9", broken=True),
                              compile_modules=False)
    dev = device_factory(device_config(gw.port, **UPDATES_ON)).start()
    dev.wait_for(ONLINE)
    with observing(gw.port, [STATUS]) as obs:
        publish(gw.port, bundle, topic=UPDATE)
        obs.wait_for(STATUS, _event("update-installed", version="0.2.9"))
        assert dev.wait_exit() == RESET
        for _ in range(3):  # each try of the new code fails, and the board resets
            dev.start()
            assert dev.wait_exit() == RESET, dev.console
        dev.start()
        obs.wait_for(STATUS, _event("update-rolled-back", version="0.2.9"))
    dev.wait_for(ONLINE, count=2)
    assert dev.count("broken on purpose") == 3, dev.console
    assert dev.count(r"edgeq light 0\.2\.0;") == 2, dev.console
    state = json.loads((dev.flash_dir / "update.json").read_text())
    assert state["state"] == "rolled-back"


def test_an_update_that_never_connects_is_rolled_back(
        gw: GatewayProcess, device_factory: DeviceFactory, tmp_path: Path) -> None:
    bundle = tool.make_bundle(_light_package(tmp_path, "0.2.1"), compile_modules=False)
    dev = device_factory(device_config(gw.port, update_trial_s=1, **UPDATES_ON)).start()
    dev.wait_for(ONLINE)
    with observing(gw.port, [STATUS]) as obs:
        publish(gw.port, bundle, topic=UPDATE)
        obs.wait_for(STATUS, _event("update-installed", version="0.2.1"))
    assert dev.wait_exit() == RESET
    gw.stop()  # the new code finds no gateway: its trial runs out, three times
    for _ in range(3):
        dev.start()
        assert dev.wait_exit(timeout=15) == RESET, dev.console
    assert dev.count(r"update on trial did not connect in 1 s; resetting") == 3, dev.console
    gw.start()
    dev.start()
    dev.wait_for(ONLINE, count=2)
    assert dev.count(r"edgeq light 0\.2\.0;") == 2, dev.console
