"""A hostile message from the upstream does not wedge the bridge, and no log line holds its
password."""

from __future__ import annotations

from tests.bridge.conftest import (
    UpstreamFactory,
    bridge_config,
    bridge_state,
    wait_connected,
    wait_until,
)
from tests.conftest import GatewayFactory
from tests.support.clients import V311, paho_client

LIGHTS = """
[[queues]]
filter = "lights/+/commands"
last_value_key = "json:command.type"
"""
NESTED = b"[" * 100_000
PASSWORD = "bridge-pw-7f3a"


def test_a_deeply_nested_last_value_payload_does_not_wedge_the_bridge(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    upstream = upstreams()
    gw = gateway_factory(LIGHTS + bridge_config(
        upstream.port, 'pattern = "lights/#"\ndirection = "in"\nqos = 1',
        username="site1", password=PASSWORD))
    wait_connected(gw)
    green = b'{"command": {"type": "set-color"}, "c": "Green"}'
    with paho_client(upstream.port, "cloud-app", V311) as app:
        app.publish("lights/l1/commands", NESTED, qos=1)
        app.publish("lights/l1/commands", green, qos=1)
        wait_until(lambda: bridge_state(gw)["received"] == 2, what="both messages bridged")
    state = bridge_state(gw)
    assert (state["connected"], state["connects"], state["last_error"]) == (True, 1, "")
    with paho_client(gw.port, "light-1", V311) as light:
        light.subscribe("$q/lights/+/commands", qos=1)
        assert [m.payload for m in light.get_many(2)] == [NESTED, green]
    assert PASSWORD not in gw.log()
