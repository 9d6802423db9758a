"""`$SYS/` statistics as Mosquitto publishes them (every second on the shared gateway)."""

from __future__ import annotations

import time

from gateway.mqtt.packets import Publish, Subscription
from tests.support.clients import MosquittoSub, RawClient, connected
from tests.support.procs import GatewayProcess

EXPECTED = ["version", "uptime", "clients/connected", "clients/disconnected", "clients/total",
            "clients/maximum", "messages/received", "messages/sent", "bytes/received",
            "bytes/sent", "subscriptions/count", "retained messages/count"]


def _collect(client: RawClient, until: set[str], timeout: float = 4.0) -> dict[str, str]:
    """$SYS/broker/... values by key, read until every key in `until` was seen."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while not until <= seen.keys():
        packet = client.read(max(deadline - time.monotonic(), 0.01))
        if isinstance(packet, Publish):
            seen[packet.topic.removeprefix("$SYS/broker/")] = packet.payload.decode()
    return seen


def test_sys_statistics_exist(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag) as client:
        # retain handling 2: only fresh values, published while this client is connected
        client.subscribe(Subscription("$SYS/broker/#", 0, retain_handling=2))
        stats = _collect(client, set(EXPECTED))
        assert stats["version"].startswith("edgeq ")
        for key in EXPECTED[1:]:
            assert stats[key].isdigit(), (key, stats[key])
        assert int(stats["clients/connected"]) >= 1


def test_sys_statistics_follow_the_traffic(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag) as client:
        client.subscribe(Subscription("$SYS/broker/messages/received", 0, retain_handling=2),
                         Subscription("$SYS/broker/clients/connected", 0, retain_handling=2))
        before = _collect(client, {"messages/received", "clients/connected"})
        extra = [connected(broker.port, f"{tag}-{i}") for i in range(3)]
        try:
            for c in extra:
                c.publish(f"{tag}/x", b"counted", 1)
            after = _collect(client, {"messages/received", "clients/connected"})
            assert int(after["messages/received"]) >= int(before["messages/received"]) + 3
            assert int(after["clients/connected"]) >= int(before["clients/connected"]) + 3
        finally:
            for c in extra:
                c.close()


def test_mosquitto_sub_reads_sys_version(broker: GatewayProcess) -> None:
    sub = MosquittoSub(broker.port, ["-v", "-C", "1", "-t", "$SYS/broker/version"])
    try:
        assert sub.wait_for("$SYS/broker/version ").startswith("$SYS/broker/version edgeq ")
        assert sub.finish() == 0
    finally:
        sub.stop()
