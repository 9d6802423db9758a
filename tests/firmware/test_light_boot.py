"""Start-up paths that need no broker: a bad config and the /nostart maintenance hatch."""

from __future__ import annotations

from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import device_config
from tests.support.procs import free_port


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
