"""Start-up paths: a bad config, the /nostart maintenance hatch, the device id."""

from __future__ import annotations

from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import device_config
from tests.support.procs import MosquittoProcess, free_port


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
