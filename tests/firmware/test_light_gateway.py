"""The light firmware in the real MicroPython interpreter against the real edgeq gateway.

The gateway runs the template last-value queue of docs/device-firmware.md; the light consumes
its own queue, $q/lights/light-1/commands, as an MQTT 3.1.1 client (umqtt.simple). Commands are
sent the way a cloud application sends them: `edgeq device send` (paho-mqtt, MQTT 5, user
property command_type).
"""

from __future__ import annotations

from tests.conftest import GatewayFactory
from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import (
    DEVICE_ID,
    GREEN,
    WHITE,
    device_config,
    observing,
    send,
    send_raw,
    state_is,
)
from tests.support.procs import GatewayProcess

LVQ_BY_USER_PROPERTY = """
[[queues]]
filter = "lights/+/commands"
template = true
last_value_key = "user_property:command_type"
"""

LVQ_BY_JSON_FIELD = """
[[queues]]
filter = "lights/+/commands"
template = true
last_value_key = "json:command_type"
"""

STATE = f"lights/{DEVICE_ID}/state"
ONLINE = r"mqtt: subscribed to \$q/lights/light-1/commands; online"
APPLIED = r"command applied on lights/light-1/commands"  # messages keep their original topic


def _gateway(factory: GatewayFactory, config_text: str) -> GatewayProcess:
    # The admin API on a free port: its default, 127.0.0.1:18083, clashes between test runs.
    return factory(config_text=config_text, extra_args=["--admin", "127.0.0.1:0"])


def _send_blue_red_green(port: int, mqtt_version: str = "5") -> None:
    for colour in ("blue", "red", "green"):
        send(port, "set-color", colour, mqtt_version=mqtt_version)


def test_a_new_light_applies_only_the_last_colour_sent_before_it_ever_connected(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = _gateway(gateway_factory, LVQ_BY_USER_PROPERTY)
    _send_blue_red_green(gw.port)  # the template makes the light's queue on first publish

    dev = device_factory(device_config(gw.port)).start()
    dev.wait_for(APPLIED + ": set-color #00ff00")
    with observing(gw.port, [STATE]) as obs:
        obs.wait_for(STATE, state_is(color="#00ff00"))
    with observing(gw.port, [STATE]) as obs:  # a late subscriber gets the retained state
        assert obs.wait_for(STATE).json()["color"] == "#00ff00"
        assert obs.wait_for(STATE).retain
    assert dev.count(APPLIED) == 1, dev.console
    assert dev.hw.colors() == [(0, 0, 0), WHITE, GREEN]


def test_a_light_that_was_offline_applies_only_green_on_boot(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = _gateway(gateway_factory, LVQ_BY_USER_PROPERTY)
    dev = device_factory(device_config(gw.port, max_loops=15)).start()
    assert dev.wait_exit() == 0  # a clean stop: the session stays on the gateway

    _send_blue_red_green(gw.port)
    dev.config["max_loops"] = 0
    dev.start()
    dev.wait_for("session present: 1")
    dev.wait_for(APPLIED + ": set-color #00ff00")
    with observing(gw.port, [STATE]) as obs:
        obs.wait_for(STATE, state_is(color="#00ff00"))
    assert dev.count(APPLIED) == 1, dev.console
    assert dev.hw.colors()[-2:] == [WHITE, GREEN]


def test_mqtt_311_producers_are_keyed_by_the_json_command_type(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = _gateway(gateway_factory, LVQ_BY_JSON_FIELD)
    _send_blue_red_green(gw.port, mqtt_version="3.1.1")  # no user properties in 3.1.1

    dev = device_factory(device_config(gw.port)).start()
    dev.wait_for(APPLIED + ": set-color #00ff00")
    with observing(gw.port, [STATE]) as obs:
        obs.wait_for(STATE, state_is(color="#00ff00"))
    assert dev.count(APPLIED) == 1, dev.console
    assert dev.hw.colors() == [(0, 0, 0), WHITE, GREEN]


def test_a_gateway_restart_is_survived_by_reconnecting(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = _gateway(gateway_factory, LVQ_BY_USER_PROPERTY)
    dev = device_factory(device_config(gw.port)).start()
    dev.wait_for(ONLINE)

    gw.restart()  # same port, same data directory
    dev.wait_for(r"link down: ")
    dev.wait_for(ONLINE, count=2)
    assert dev.count(r"session present: 1") == 1, dev.console  # the session survived in SQLite
    with observing(gw.port, [STATE]) as obs:
        send(gw.port, "set-color", "green")
        obs.wait_for(STATE, state_is(color="#00ff00"))
    assert dev.hw.colors()[-1] == GREEN


def test_a_malformed_command_is_acknowledged_and_does_not_stop_the_light(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = _gateway(gateway_factory, LVQ_BY_USER_PROPERTY)
    dev = device_factory(device_config(gw.port)).start()
    bad = ["not json", '{"command_type": "explode"}',
           '{"command_type": "set-color", "color": "chartreuse-ish"}']
    with observing(gw.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        for i, payload in enumerate(bad):  # distinct keys, so no bad one replaces another
            send_raw(gw.port, payload, command_type=f"bad-{i}")
        send(gw.port, "set-color", "green", command_id="after-the-bad-ones")
        obs.wait_for(STATE, state_is(color="#00ff00", last_command_id="after-the-bad-ones"))
    dev.wait_for(APPLIED + ": set-color #00ff00")  # the console has caught up
    assert dev.count("command rejected") == len(bad), dev.console

    # Acknowledged means removed from the queue: after a power cut they do not come back.
    dev.kill()
    dev.start()
    dev.wait_for(ONLINE, count=2)
    with observing(gw.port, [STATE]) as obs:
        send(gw.port, "power", "off", command_id="sentinel")
        obs.wait_for(STATE, state_is(last_command_id="sentinel"))
    dev.wait_for(APPLIED + ": power off")
    assert dev.count("command rejected") == len(bad), dev.console
