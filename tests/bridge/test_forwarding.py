"""Messages cross the bridge both ways, remapped by the topic rules, and never loop."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes

from gateway.admin.client import AdminClient
from tests.bridge.conftest import (
    UpstreamFactory,
    admin,
    bridge_config,
    bridge_state,
    reload,
    wait_connected,
    wait_until,
)
from tests.conftest import GatewayFactory
from tests.support.clients import V5, V311, paho_client, props
from tests.support.procs import free_port

PROTOCOLS = pytest.mark.parametrize("protocol", ["3.1.1", "5.0"])


@PROTOCOLS
def test_local_messages_reach_the_upstream_under_the_remote_prefix(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory, protocol: str) -> None:
    upstream = upstreams()
    gw = gateway_factory(bridge_config(
        upstream.port, 'pattern = "sensors/#"\ndirection = "out"\nremote_prefix = "site1/"',
        protocol=protocol))
    wait_connected(gw)
    with paho_client(upstream.port, "watcher", V5) as watcher, \
            paho_client(gw.port, "sensor", V5) as sensor:
        watcher.subscribe("site1/#", qos=1)
        sensor.publish("sensors/t1", b"21.5", qos=1,
                       properties=props(PacketTypes.PUBLISH, UserProperty=[("unit", "C")]))
        sensor.publish("other/t1", b"not bridged", qos=1)
        got = watcher.get()
        assert (got.topic, got.payload) == ("site1/sensors/t1", b"21.5")
        user_properties = getattr(got.properties, "UserProperty", [])
        assert user_properties == ([("unit", "C")] if protocol == "5.0" else [])
        watcher.expect_nothing()


@PROTOCOLS
def test_upstream_messages_reach_local_subscribers(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory, protocol: str) -> None:
    upstream = upstreams()
    gw = gateway_factory(bridge_config(
        upstream.port, 'pattern = "cmd/#"\ndirection = "in"\nqos = 1\n'
                       'local_prefix = "from-cloud/"\nremote_prefix = "site1/"',
        protocol=protocol))
    wait_connected(gw)
    with paho_client(gw.port, "device", V311) as device, \
            paho_client(upstream.port, "cloud-app", V311) as app:
        device.subscribe("from-cloud/#", qos=1)
        app.publish("site1/cmd/light-1", b"on", qos=1)
        app.publish("site2/cmd/light-1", b"someone else's", qos=1)
        got = device.get()
        assert (got.topic, got.payload, got.qos) == ("from-cloud/cmd/light-1", b"on", 1)
        device.expect_nothing()
    assert bridge_state(gw)["received"] == 1


@PROTOCOLS
def test_a_topic_bridged_both_ways_does_not_loop(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory, protocol: str) -> None:
    upstream = upstreams()
    gw = gateway_factory(bridge_config(
        upstream.port, 'pattern = "shared/#"\ndirection = "both"', protocol=protocol))
    wait_connected(gw)
    with paho_client(gw.port, "local", V5) as local, \
            paho_client(upstream.port, "remote", V5) as remote:
        local.subscribe("shared/#", qos=1)
        remote.subscribe("shared/#", qos=1)
        local.publish("shared/from-local", b"1", qos=1)
        remote.publish("shared/from-remote", b"2", qos=1)
        # each side sees each message exactly once: nothing echoes back down or up again
        assert sorted(m.topic for m in local.get_many(2)) == ["shared/from-local",
                                                              "shared/from-remote"]
        assert sorted(m.topic for m in remote.get_many(2)) == ["shared/from-local",
                                                               "shared/from-remote"]
        local.expect_nothing(0.5)
        remote.expect_nothing(0.1)
    state = wait_until(lambda: (s := bridge_state(gw))["outbox_depth"] == 0 and s,
                       what="an empty outbox")
    assert (state["sent"], state["received"]) == (1, 1)
    assert state["skipped"] == 1  # the message that came down was not sent back up


def test_each_local_message_goes_up_once_by_the_first_matching_rule(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    upstream = upstreams()
    gw = gateway_factory(bridge_config(
        upstream.port, 'pattern = "a/b/#"\nremote_prefix = "first/"',
        'pattern = "a/#"\nremote_prefix = "second/"'))
    wait_connected(gw)
    with paho_client(upstream.port, "watcher", V5) as watcher, \
            paho_client(gw.port, "sensor", V5) as sensor:
        watcher.subscribe("#", qos=1)
        sensor.publish("a/b/c", b"x", qos=1)
        sensor.publish("a/z", b"y", qos=1)
        assert sorted(m.topic for m in watcher.get_many(2)) == ["first/a/b/c", "second/a/z"]
        watcher.expect_nothing()


def test_bridge_state_is_in_the_admin_api_and_sys(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    upstream = upstreams()
    gw = gateway_factory(bridge_config(upstream.port, 'pattern = "sensors/#"',
                                       client_id="gw-7"))
    wait_connected(gw)
    [record] = admin(gw, AdminClient.bridges)
    assert record["name"] == "up" and record["client_id"] == "gw-7"
    assert record["state"] == "connected" and record["protocol"] == "3.1.1"
    assert record["outbox_queues"] == ["bridge.up.sensors.all"]
    queues = {q["name"]: q for q in admin(gw, AdminClient.queues)}
    assert queues["bridge.up.sensors.all"]["consumers"] == 1
    with paho_client(gw.port, "dashboard", V5) as dashboard:
        dashboard.subscribe("$SYS/broker/bridges/up/#")
        seen: dict[str, bytes] = {}
        wait_until(lambda: seen.update({(m := dashboard.get()).topic: m.payload}) or len(
            seen) >= 11, what="the bridge's $SYS topics")
    assert seen["$SYS/broker/bridges/up/state"] == b"connected"
    assert seen["$SYS/broker/bridges/up/connected"] == b"1"
    assert seen["$SYS/broker/bridges/up/outbox/depth"] == b"0"


def test_a_removed_bridge_leaves_its_undelivered_messages_in_an_orphan_queue(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(bridge_config(free_port(), 'pattern = "sensors/#"'))  # never reachable
    with paho_client(gw.port, "sensor", V5) as sensor:
        sensor.publish("sensors/t1", b"kept", qos=1)
    reload(gw, "[mqtt]\nsys_interval = 1\n")
    wait_until(lambda: admin(gw, AdminClient.bridges) == [], what="the bridge to go")
    outbox = admin(gw, lambda c: c.queue("bridge.up.sensors.all"))
    assert (outbox["origin"], outbox["stats"]["depth"]) == ("orphan", 1)
    with paho_client(gw.port, "dashboard", V5) as dashboard:
        dashboard.subscribe("$SYS/broker/bridges/#")
        assert dashboard.get().topic == "$SYS/broker/bridges"  # the list, now empty
        dashboard.expect_nothing()  # the removed bridge's own topics were cleared
