"""The light in the field: what it does about bad commands, dead links, wrong wiring, a reset,
a redelivered command and a second board with its id. Real MicroPython, real edgeq gateway.

Each scenario is one failure from docs/device-firmware.md ("How the light behaves").
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import GatewayFactory
from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import (
    DEVICE_ID,
    GREEN,
    RED,
    FreezableProxy,
    Message,
    SilentServer,
    device_config,
    observing,
    publish,
    send,
    state_is,
)
from tests.support.procs import GatewayProcess

LVQ = """
[[queues]]
filter = "lights/+/commands"
template = true
last_value_key = "user_property:command_type"
"""

STATE = f"lights/{DEVICE_ID}/state"
STATUS = f"lights/{DEVICE_ID}/status"
ONLINE = r"mqtt: subscribed to \$q/lights/light-1/commands; online"
APPLIED = r"command applied on lights/light-1/commands"


@pytest.fixture
def gw(gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(config_text=LVQ, extra_args=["--admin", "127.0.0.1:0"])


def _event(kind: str) -> Callable[[Message], bool]:
    """A predicate: a JSON report of this kind on the status topic."""
    def check(m: Message) -> bool:
        return m.payload.startswith(b"{") and m.json().get("event") == kind
    return check


def _scaled(colour: tuple[int, int, int], percent: int) -> tuple[int, int, int]:
    r, g, b = colour
    return ((r * percent + 50) // 100, (g * percent + 50) // 100, (b * percent + 50) // 100)


# --- 1. commands that do not fit ----------------------------------------------------------------

def test_a_command_larger_than_the_heap_is_discarded_unread_acknowledged_and_reported(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    huge = b'{"command_type": "set-color", "color": "' + b"x" * 1_000_000 + b'"}'
    garbage = b'\xff\xfe\x80{"command_type": "set-color", "color": "\xc3"}'
    dev = device_factory(device_config(gw.port)).start()
    with observing(gw.port, [STATE, STATUS]) as obs:
        dev.wait_for(ONLINE)
        publish(gw.port, huge, command_type="huge")
        publish(gw.port, garbage, command_type="garbage")
        send(gw.port, "set-color", "green", command_id="after")
        report = obs.wait_for(STATUS, _event("command-rejected")).json()
        assert report["bytes"] == len(huge)
        assert "too large" in report["error"]
        assert not obs.wait_for(STATUS, _event("command-rejected")).retain
        obs.wait_for(STATE, state_is(color="#00ff00", last_command_id="after"))
    dev.wait_for(APPLIED + ": set-color #00ff00")  # the console has caught up
    assert dev.proc is not None and dev.proc.poll() is None, dev.console  # never a reboot
    assert dev.hw.events("reset") == []
    assert dev.count("command rejected") == 2, dev.console

    dev.kill()  # acknowledged means gone: neither comes back after a power cut
    dev.start()
    dev.wait_for(ONLINE, count=2)
    with observing(gw.port, [STATE]) as obs:
        send(gw.port, "power", "off", command_id="sentinel")
        obs.wait_for(STATE, state_is(last_command_id="sentinel"))
    dev.wait_for(APPLIED + ": power off")
    assert dev.count("command rejected") == 2, dev.console


# --- 2. a half-open link ------------------------------------------------------------------------

@pytest.fixture
def proxy(gw: GatewayProcess) -> Iterator[FreezableProxy]:
    p = FreezableProxy(gw.port)
    yield p
    p.close()


def test_a_half_open_link_is_noticed_within_one_and_a_half_keepalives(
        gw: GatewayProcess, proxy: FreezableProxy, device_factory: DeviceFactory) -> None:
    cfg = device_config(proxy.port, gateway={"keepalive_s": 5})
    dev = device_factory(cfg).start()
    with observing(gw.port, [STATE]) as obs:
        obs.wait_for(STATE)
    time.sleep(0.5)  # the gateway's PUBACK for that state is back: only the keepalive talks
    frozen_at = time.monotonic()
    proxy.freeze()
    dev.wait_for(r"link down: no PINGRESP", timeout=12)
    assert time.monotonic() - frozen_at <= 7.5
    proxy.thaw()
    dev.wait_for(ONLINE, count=2)
    with observing(gw.port, [STATE]) as obs:
        send(gw.port, "set-color", "green")
        obs.wait_for(STATE, state_is(color="#00ff00"))


# --- 3. a peer that never answers ---------------------------------------------------------------

def test_a_gateway_that_never_answers_times_out_and_the_loop_keeps_the_watchdog_fed(
        device_factory: DeviceFactory) -> None:
    silent = SilentServer()
    try:
        cfg = device_config(silent.port, gateway={"timeout_ms": 1000}, max_loops=3)
        dev = device_factory(cfg).start()
        assert dev.wait_exit(timeout=20) == 0, dev.console
    finally:
        silent.close()
    assert dev.count(r"link down: no answer from the gateway in 1000 ms") == 3, dev.console
    assert len(silent.accepted) == 3
    # the device_factory fixture checks that the watchdog was fed in time throughout


# --- 4. the state survives a reset --------------------------------------------------------------

def test_after_a_watchdog_reset_the_light_shows_its_last_state_then_the_queued_command(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(gw.port)).start()
    with observing(gw.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(gw.port, "set-brightness", "40")
        send(gw.port, "set-color", "green", command_id="g")
        obs.wait_for(STATE, state_is(color="#00ff00", brightness=40, last_command_id="g"))
    dev.wait_for(r"state saved: on #00ff00 40%")
    dev.kill()
    send(gw.port, "set-color", "red")  # queued while the board is down
    shown_before = len(dev.hw.colors())
    dev.env["MPYRUN_RESET_CAUSE"] = "3"  # machine.WDT_RESET
    dev.start()
    dev.wait_for(APPLIED + ": set-color #ff0000")
    assert dev.hw.colors()[shown_before:] == [(0, 0, 0), _scaled(GREEN, 40), _scaled(RED, 40)]
    assert "reset cause: wdt_reset" in dev.console
    assert dev.count(r"state restored from /state\.json: on #00ff00 40%") == 1, dev.console


def test_a_command_applied_but_not_yet_on_flash_comes_again_after_a_reset(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(gw.port, state_save_ms=60000)).start()
    with observing(gw.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(gw.port, "set-brightness", "40")  # the first change is written at once
        dev.wait_for(r"state saved: on #ffffff 40%")
        send(gw.port, "power", "toggle", command_id="t-9")  # applied; its write must wait
        obs.wait_for(STATE, state_is(power="off", last_command_id="t-9"))
    dev.kill()  # a watchdog reset mid-command: on the LED, not on flash, not acknowledged
    dev.env["MPYRUN_RESET_CAUSE"] = "3"
    shown_before = len(dev.hw.colors())
    dev.start()
    dev.wait_for(APPLIED + ": power toggle", count=2)
    assert dev.hw.colors()[shown_before:] == [(0, 0, 0), _scaled((255, 255, 255), 40), (0, 0, 0)]


def test_the_state_is_written_to_flash_only_when_it_changes_and_not_faster_than_the_limit(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(gw.port, state_save_ms=3000)).start()
    with observing(gw.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(gw.port, "set-color", "green", command_id="same-1")
        obs.wait_for(STATE, state_is(last_command_id="same-1"))
        dev.wait_for("state saved: on #00ff00 100%")  # the console may lag behind MQTT
        saves = dev.count("state saved")
        send(gw.port, "set-color", "green", command_id="same-2")  # no change: no write
        obs.wait_for(STATE, state_is(last_command_id="same-2"))
        for level in range(10, 60, 10):  # five changes within the limit: one write later
            send(gw.port, "set-brightness", str(level))
        obs.wait_for(STATE, state_is(brightness=50))
    dev.wait_for("state saved", count=saves + 1, timeout=6)
    time.sleep(2)
    assert dev.count("state saved") == saves + 1, dev.console
    doc = json.loads((dev.flash_dir / "state.json").read_text())
    assert doc["state"] == {"power": "on", "color": "#00ff00", "brightness": 50}


# --- 5. pins the chip does not have -------------------------------------------------------------

def test_an_input_only_pin_is_reported_on_the_status_topic_without_a_reset_loop(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    cfg = device_config(gw.port, led={"pins": [34, 26, 27]})
    dev = device_factory(cfg).start()
    with observing(gw.port, [STATUS]) as obs:
        report = obs.wait_for(STATUS, _event("hardware-error")).json()
    assert report["error"] == "led.pins: GPIO34 is input-only on the ESP32 (it cannot drive an LED)"
    dev.wait_for(r"mqtt: connected")
    time.sleep(1)
    assert dev.proc is not None and dev.proc.poll() is None
    assert dev.hw.events("reset") == [] and dev.hw.events("pwm") == []
    with observing(gw.port, [STATUS]) as late:  # the error is what a late subscriber sees
        assert late.wait_for(STATUS, lambda m: m.retain).json()["event"] == "hardware-error"


def test_a_hardware_error_from_the_board_is_handled_and_reported(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    # The config names an ESP32 but the board is a C3, which has no GPIO 25.
    dev = device_factory(device_config(gw.port))
    dev.env["MPYRUN_CHIP"] = "esp32c3"
    dev.start()
    with observing(gw.port, [STATUS]) as obs:
        report = obs.wait_for(STATUS, _event("hardware-error")).json()
    assert report["error"] == "led: ValueError: invalid pin"
    assert dev.proc is not None and dev.proc.poll() is None
    assert dev.hw.events("reset") == []


# --- 6. a redelivered toggle --------------------------------------------------------------------

def test_a_redelivered_toggle_is_applied_once_even_across_a_reset(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(gw.port)).start()
    with observing(gw.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(gw.port, "power", "toggle", command_id="t-1")
        obs.wait_for(STATE, state_is(power="off", last_command_id="t-1"))
        send(gw.port, "power", "toggle", command_id="t-1")  # the same command, again
        dev.wait_for(r"command t-1 already applied; acknowledged again")
    dev.kill()
    dev.start()
    dev.wait_for(ONLINE, count=2)
    with observing(gw.port, [STATE]) as obs:
        send(gw.port, "power", "toggle", command_id="t-1")
        dev.wait_for(r"command t-1 already applied", count=2)
        send(gw.port, "power", "toggle", command_id="t-2")
        obs.wait_for(STATE, state_is(power="on", last_command_id="t-2"))
    dev.wait_for(APPLIED + ": power toggle", count=2)
    assert dev.count(APPLIED + ": power toggle") == 2, dev.console


# --- 7. two boards with one id ------------------------------------------------------------------

def test_two_boards_with_the_same_id_back_off_instead_of_flapping(
        gw: GatewayProcess, device_factory: DeviceFactory) -> None:
    cfg = device_config(gw.port, reconnect_min_ms=100, reconnect_max_ms=1600)
    first = device_factory(cfg).start()
    second = device_factory(cfg).start()
    time.sleep(8)
    connects = first.count("mqtt: connected") + second.count("mqtt: connected")
    assert connects <= 20, (first.console, second.console)  # it was 82 in 15 s
    delays = [int(d) for dev in (first, second)
              for d in re.findall(r"retrying in (\d+) ms", dev.console)]
    assert max(delays) >= 800, delays
    assert "closed by the gateway" in first.console + second.console
    assert "another board may be using the id light-1" in first.console + second.console


# --- 8. TLS that does not verify ----------------------------------------------------------------

def test_tls_without_a_ca_file_is_refused_on_the_board_unless_insecure(
        device_factory: DeviceFactory) -> None:
    cfg = device_config(1, gateway={"tls": True})
    dev = device_factory(cfg).start()
    assert dev.wait_exit() == 0
    assert ("config error: /config.json: gateway.ca_file: required with gateway.tls (or set "
            "gateway.insecure = true to skip checking the gateway's certificate)") in dev.console
    assert dev.hw.events("wdt") == []
