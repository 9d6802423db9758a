"""A hostile last-value payload through a real gateway: kept without a key, counted, harmless."""

from __future__ import annotations

from gateway.mqtt.packets import MQTT_311
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, publish
from tests.support.clients import connected

LIGHTS = """
[[queues]]
filter = "lights/+/commands"
last_value_key = "json:command.type"
"""
NESTED = b"[" * 100_000


def test_a_deeply_nested_payload_is_kept_as_an_ordinary_message(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(LIGHTS)
    blue = b'{"command": {"type": "set-color"}, "c": "Blue"}'
    green = b'{"command": {"type": "set-color"}, "c": "Green"}'
    assert publish(gw.port, "lights/l1/commands", blue, NESTED, green) == [0, 0, 0]
    with connected(gw.port, "light-1", MQTT_311) as light:
        light.subscribe("$q/lights/+/commands", qos=1)
        assert [light.receive().payload for _ in range(2)] == [NESTED, green]
    admin = Admin(gw)
    assert admin.stats("lights/+/commands")["key_errors"] == 1
    assert 'edgeq_queue_key_errors_total{queue="lights/+/commands"} 1' in admin.metrics()
