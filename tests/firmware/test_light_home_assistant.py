"""Home Assistant MQTT discovery: the light announces itself, and the templates it announces,
rendered as Home Assistant renders them (Jinja2), drive the light through the real gateway."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import GatewayFactory
from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import DEVICE_ID, device_config, observing, state_is

DEFAULT_LVQ = """
[[queues]]
filter = "lights/+/commands"
template = true
last_value_key = "user_property:command_type|json:command_type"
"""
DISCOVERY = f"homeassistant/light/{DEVICE_ID}/config"
STATE = f"lights/{DEVICE_ID}/state"
ONLINE = r"mqtt: subscribed to \$q/lights/light-1/commands; online"


def _render(template: str, **variables: Any) -> str:
    return jinja2.Environment(undefined=jinja2.Undefined).from_string(template).render(
        **variables)


def _publish_as_home_assistant(port: int, topic: str, payload: str) -> None:
    """Home Assistant's MQTT integration: a plain MQTT 3.1.1 client, no user properties."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_light_announces_itself_and_obeys_its_own_templates(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = gateway_factory(config_text=DEFAULT_LVQ, extra_args=["--admin", "127.0.0.1:0"])
    cfg = device_config(gw.port, home_assistant={"discovery": True})
    dev = device_factory(cfg).start()
    with observing(gw.port, [DISCOVERY, STATE]) as obs:
        announced = obs.wait_for(DISCOVERY)
        doc = announced.json()
        assert doc["schema"] == "template"
        assert doc["command_topic"] == f"lights/{DEVICE_ID}/commands"
        assert doc["state_topic"] == STATE
        assert doc["availability_topic"] == f"lights/{DEVICE_ID}/status"
        assert doc["unique_id"] == f"edgeq-{DEVICE_ID}"
        assert doc["device"]["sw_version"] == "0.2.0"
        dev.wait_for(ONLINE)

        # Turn on at brightness 102/255 in orange, as the Home Assistant UI would.
        on = _render(doc["command_on_template"], state="on", brightness=102, red=255, green=128,
                     blue=0)
        assert json.loads(on) == {"command_type": "set", "power": "on", "brightness": 40,
                                  "color": [255, 128, 0]}
        _publish_as_home_assistant(gw.port, doc["command_topic"], on)
        state = obs.wait_for(STATE, state_is(color="#ff8000", brightness=40))
        assert _render(doc["state_template"], value_json=state.json()) == "on"
        assert _render(doc["brightness_template"], value_json=state.json()) == "102"
        rgb = [_render(doc[f"{c}_template"], value_json=state.json())
               for c in ("red", "green", "blue")]
        assert rgb == ["255", "128", "0"]

        _publish_as_home_assistant(gw.port, doc["command_topic"],
                                   _render(doc["command_off_template"], state="off"))
        off = obs.wait_for(STATE, state_is(power="off"))
        assert _render(doc["state_template"], value_json=off.json()) == "off"
    assert _render(doc["availability_template"], value="online") == "online"
    assert _render(doc["availability_template"], value='{"event": "hardware-error"}') == "offline"
    with observing(gw.port, [DISCOVERY]) as late:  # retained, for a Home Assistant started later
        assert late.wait_for(DISCOVERY).retain


def test_without_discovery_nothing_is_announced(
        gateway_factory: GatewayFactory, device_factory: DeviceFactory) -> None:
    gw = gateway_factory(config_text=DEFAULT_LVQ, extra_args=["--admin", "127.0.0.1:0"])
    dev = device_factory(device_config(gw.port)).start()
    with observing(gw.port, ["homeassistant/#", STATE]) as obs:
        obs.wait_for(STATE)
        dev.wait_for(ONLINE)
        assert obs.on(DISCOVERY) == []
