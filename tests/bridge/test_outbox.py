"""The outbox: what is published locally while the uplink is down waits on disk and reaches the
upstream, in order, when it returns — across a SIGKILL of the gateway too.

The upstream is a mosquitto with persistence, and the upstream-side reader is a persistent
session, so the reader misses nothing whichever of it and the bridge reconnects first.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.bridge.conftest import (
    UpstreamFactory,
    bridge_config,
    bridge_state,
    wait_connected,
    wait_until,
)
from tests.conftest import GatewayFactory
from tests.support.clients import V311, PahoClient
from tests.support.procs import GatewayProcess, MosquittoProcess

PERSISTENT = "persistence true\nmax_queued_messages 0\n"
RULE = 'pattern = "seq/#"\nremote_prefix = "site1/"'


def reader(port: int) -> PahoClient:
    """The upstream application: a persistent session subscribed to the bridged topics."""
    client = PahoClient(port, "cloud-reader", V311, clean=False)
    client.connect()
    client.subscribe("site1/seq/#", qos=1)
    return client


def publish_many(port: int, count: int, topic: str = "seq/n") -> None:
    """Publish `count` numbered QoS 1 messages to the gateway; return once all are PUBACKed
    (that is, committed)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="producer")
    client.max_inflight_messages_set(100)  # the gateway's receive maximum
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(5), "no CONNACK from the gateway"
        infos = [client.publish(topic, str(i).encode(), qos=1) for i in range(count)]
        deadline = time.monotonic() + 30
        for info in infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            assert info.is_published(), "the gateway did not acknowledge every message"
    finally:
        client.disconnect()
        client.loop_stop()


def take_down(upstream: MosquittoProcess, gw: GatewayProcess) -> None:
    upstream.stop()
    wait_until(lambda: not bridge_state(gw)["connected"], what="the bridge to notice")


def collect(client: PahoClient, count: int, timeout: float) -> list[int]:
    return [int(m.payload) for m in client.get_many(count, timeout)]


def test_ten_thousand_messages_wait_for_the_upstream_and_arrive_in_order(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    count = 10_000
    upstream = upstreams(extra_config=PERSISTENT)
    gw = gateway_factory(bridge_config(upstream.port, RULE))
    wait_connected(gw)
    reader(upstream.port).disconnect()
    take_down(upstream, gw)

    published = time.monotonic()
    publish_many(gw.port, count)
    published = time.monotonic() - published
    state = bridge_state(gw)
    assert (state["outbox_depth"], state["outbox_lag_messages"]) == (count, count)
    assert state["outbox_lag_seconds"] > 0

    started = time.monotonic()
    upstreams(port=upstream.port, extra_config=PERSISTENT)
    wait_until(lambda: bridge_state(gw)["outbox_depth"] == 0, timeout=30,
               what="an empty outbox")
    elapsed = time.monotonic() - started
    app = reader(upstream.port)  # its session was kept by the upstream: all were queued
    got = collect(app, count, timeout=30)
    app.disconnect()
    assert got == list(range(count))
    print(f"\n{count} messages: stored in {published:.2f}s while the upstream was down, "
          f"all sent {elapsed:.2f}s after it came back")


def test_a_gateway_killed_with_a_full_outbox_loses_nothing(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    count = 2_000
    upstream = upstreams(extra_config=PERSISTENT)
    gw = gateway_factory(bridge_config(upstream.port, RULE))
    wait_connected(gw)
    reader(upstream.port).disconnect()
    take_down(upstream, gw)
    publish_many(gw.port, count)

    gw.kill()
    upstreams(port=upstream.port, extra_config=PERSISTENT)
    gw.start()
    app = reader(upstream.port)
    got = collect(app, count, timeout=20)
    app.disconnect()
    assert got == list(range(count))


def test_a_gateway_killed_while_draining_loses_nothing(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    """Killed mid-drain, some messages may go twice (at-least-once), none is lost."""
    count = 3_000
    upstream = upstreams(extra_config=PERSISTENT)
    gw = gateway_factory(bridge_config(upstream.port, RULE, max_inflight=4))
    wait_connected(gw)
    reader(upstream.port).disconnect()
    take_down(upstream, gw)
    publish_many(gw.port, count)

    upstreams(port=upstream.port, extra_config=PERSISTENT)
    app = reader(upstream.port)
    got = collect(app, 1, timeout=10)
    left = bridge_state(gw)["outbox_depth"]
    gw.kill()
    assert left > 0, "the outbox had drained before the kill"
    gw.start()
    deadline = time.monotonic() + 20
    while len(set(got)) < count:
        got += collect(app, 1, timeout=max(0.01, deadline - time.monotonic()))
    app.disconnect()
    assert set(got) == set(range(count))
    first_seen = list(dict.fromkeys(got))
    assert first_seen == list(range(count))
