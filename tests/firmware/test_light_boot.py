"""Start-up paths: a bad config, the /nostart maintenance hatch, the device id."""

from __future__ import annotations

from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import DEVICE_ID, device_config, observing
from tests.support.procs import MosquittoProcess, free_port

TELEMETRY = f"lights/{DEVICE_ID}/telemetry"


def test_a_bad_config_stops_at_the_repl_without_arming_the_watchdog(
        device_factory: DeviceFactory) -> None:
    cfg = device_config(free_port())
    del cfg["gateway"]["host"]
    dev = device_factory(cfg).start()
    assert dev.wait_exit() == 0  # back at the REPL, where `edgeq device config` can fix it
    assert "config error: /config.json: gateway.host: missing (required)" in dev.console
    assert dev.hw.events("wdt") == []
    assert dev.hw.events("wifi") == []


def test_nostart_keeps_the_light_off_for_maintenance(device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(free_port())).start(extra_files={"/nostart": ""})
    assert dev.wait_exit() == 0
    assert "/nostart exists; the light is not started" in dev.console
    assert dev.hw.events() == []


def test_without_a_device_id_the_light_takes_one_from_its_mac(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    cfg = device_config(mosquitto.port)
    del cfg["device_id"]
    dev = device_factory(cfg).start()  # the machine double's MAC ends in 12:34:56
    dev.wait_for(r"mqtt: subscribed to \$q/lights/light-123456/commands; online")
    assert "device id light-123456 (from the MAC)" in dev.console


def test_telemetry_is_published_retained_after_connecting_and_then_periodically(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    cfg = device_config(mosquitto.port, topics={"commands": "lights/{id}/commands"},
                        telemetry_s=1)
    dev = device_factory(cfg)
    dev.env["MPYRUN_RESET_CAUSE"] = "3"
    dev.start()
    with observing(mosquitto.port, [TELEMETRY]) as obs:
        first = obs.wait_for(TELEMETRY)
        obs.wait_for(TELEMETRY, lambda m: m.json()["uptime_s"] >= 2, timeout=5)  # periodic
    doc = first.json()
    assert doc["version"] == "0.2.0"
    assert doc["reset_cause"] == "wdt_reset"
    assert doc["rssi"] == -52
    assert doc["chip"] == "esp32"
    assert isinstance(doc["free_heap"], int) and doc["free_heap"] > 0
    with observing(mosquitto.port, [TELEMETRY]) as late:  # a late subscriber gets the last one
        assert late.wait_for(TELEMETRY).retain
