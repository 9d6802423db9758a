"""`Message.size` counts what a message costs in RAM, user properties included: limits built on
it (queue `max_bytes`, the memory budget) hold for property-heavy MQTT 5 messages too."""

from __future__ import annotations

from gateway.messages import Message, received
from gateway.mqtt.properties import Properties
from tests.broker.test_backlog import publish_many, rss_kib
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin

# 1,000 user properties of ~100 bytes: ~105 KB on the wire, ~300 KB as Python objects
HEAVY: Properties = {"user_property": [(f"key{i:04}", "v" * 96) for i in range(1000)]}


def test_size_counts_topic_payload_and_every_user_property() -> None:
    plain = received("t/1", b"abc", 1, False, {}, "c", 0.0)
    heavy = received("t/1", b"abc", 1, False, HEAVY, "c", 0.0)
    assert plain.size == 6
    assert heavy.size > 1000 * (7 + 96 + 100)
    assert Message("t/1", b"abc", 1, False, HEAVY).size == heavy.size  # one function


def test_a_queue_byte_cap_holds_for_user_property_heavy_messages(
        gateway_factory: GatewayFactory, tag: str) -> None:
    gw = gateway_factory(f"""
[[queues]]
filter = "{tag}/#"
name = "heavy"
max_bytes = 1048576
overflow = "drop_oldest"
""")
    assert gw.proc is not None
    before = rss_kib(gw.proc.pid)
    publish_many(gw.port, ((f"{tag}/x", b"%d" % i) for i in range(300)), HEAVY, window=10)
    stats = Admin(gw).stats("heavy")
    assert stats["bytes"] <= 1048576 and stats["depth"] <= 4
    assert rss_kib(gw.proc.pid) - before < 40 * 1024


def test_the_memory_budget_holds_for_user_property_heavy_messages(
        gateway_factory: GatewayFactory, tag: str) -> None:
    gw = gateway_factory(f"""
[storage]
memory_budget = 8388608

[[queues]]
filter = "{tag}/#"
name = "heavy"
""")
    assert gw.proc is not None
    before = rss_kib(gw.proc.pid)
    publish_many(gw.port, ((f"{tag}/x", b"%d" % i) for i in range(300)), HEAVY, window=10)
    assert Admin(gw).stats("heavy")["depth"] == 300
    assert rss_kib(gw.proc.pid) - before < 48 * 1024
