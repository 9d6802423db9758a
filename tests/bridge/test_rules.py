"""Topic rules, outbox queue names, config checks and reconnect delays: plain function calls."""

from __future__ import annotations

import pytest

from gateway import config
from gateway.bridge.backoff import Backoff
from gateway.bridge.rules import TopicMap
from gateway.config import (
    BridgeSpec,
    BridgeTopic,
    ConfigError,
    filter_as_name,
    outbox_specs,
    queue_specs,
)


def bridge(*topics: BridgeTopic, **keys: object) -> BridgeSpec:
    return BridgeSpec(name="cloud", address="h:1883", topics=list(topics),
                      **keys)  # type: ignore[arg-type]


def test_topics_swap_prefixes_in_both_directions() -> None:
    m = TopicMap(bridge(BridgeTopic(pattern="sensors/#", direction="both",
                                    local_prefix="site/", remote_prefix="sites/7/")))
    rule = m.first_out("site/sensors/t1")
    assert rule is not None and rule.to_remote("site/sensors/t1") == "sites/7/sensors/t1"
    assert m.first_out("sensors/t1") is None
    assert m.to_local("sites/7/sensors/t1") == "site/sensors/t1"
    assert m.to_local("sites/8/sensors/t1") is None
    assert m.subscriptions() == [("sites/7/sensors/#", 1)]


def test_a_parent_level_matched_by_hash_has_no_remapped_topic() -> None:
    m = TopicMap(bridge(BridgeTopic(pattern="#", direction="in", remote_prefix="up/")))
    assert m.to_local("up/x") == "x"
    assert m.to_local("up") is None  # `up/#` matches `up`, which has no `up/` to strip


def test_the_first_matching_out_rule_wins() -> None:
    m = TopicMap(bridge(BridgeTopic(pattern="a/b/#", remote_prefix="1/"),
                        BridgeTopic(pattern="a/#", remote_prefix="2/")))
    first = m.first_out("a/b/c")
    assert first is not None and first.remote_prefix == "1/"
    second = m.first_out("a/z")
    assert second is not None and second.remote_prefix == "2/"


def test_outbox_queues_are_named_after_their_filters() -> None:
    assert filter_as_name("sensors/+/temp") == "sensors.any.temp"
    assert filter_as_name("a b/#") == "a_b.all"
    spec = bridge(BridgeTopic(pattern="sensors/#"), BridgeTopic(pattern="cmd/#", direction="in"),
                  BridgeTopic(pattern="sensors/#", remote_prefix="copy/"),
                  max_messages=5, overflow="reject_new")
    specs = outbox_specs([spec])
    assert [s.name for s in specs] == ["bridge.cloud.sensors.all", "bridge.cloud.sensors.all-2"]
    assert all(config.QUEUE_NAME.fullmatch(s.name) for s in specs)
    first = specs[0]
    assert (first.filter, first.max_messages, first.overflow) == ("sensors/#", 5, "reject_new")
    assert (first.max_deliveries, first.ack_timeout) == (0, 0)  # a flapping link never
    # dead-letters or times out a message


def test_outboxes_are_declared_with_the_config_queues() -> None:
    c = config.parse('[[queues]]\nfilter = "jobs/+"\n\n[[bridges]]\nname = "up"\n'
                     'address = "h:1"\n[[bridges.topics]]\npattern = "s/#"\n', "x.toml")
    assert [q.queue_name for q in queue_specs(c)] == ["jobs/+", "bridge.up.s.all"]


@pytest.mark.parametrize(("bridge_keys", "topic_keys", "message"), [
    ('name = "a.b"', "", r"name: 'a.b' must match"),
    ('address = "nowhere"', "", r"address: 'nowhere' is not HOST:PORT"),
    ('cafile = "ca.pem"', "", r"cafile: only used with tls = true"),
    ('reconnect_min = 9.0\nreconnect_max = 1.0', "", r"reconnect_min: must not be above"),
    ('protocol = "5"', "", r"protocol: invalid enum value '5'; use one of 3.1.1, 5.0"),
    ("", 'pattern = "a/#/b"', r"topics\[0\].pattern: 'a/#/b' is not a usable"),
    ("", 'pattern = "$q/a"', r"topics\[0\].pattern: .* \(reserved\)"),
    ("", 'pattern = "a"\nremote_prefix = "+/"', r"topics\[0\].remote_prefix: .* wildcards"),
    ("", 'pattern = "a"\ndirection = "up"', r"topics\[0\].direction: .*; use one of out, in"),
])
def test_bridge_mistakes_are_explained(bridge_keys: str, topic_keys: str, message: str) -> None:
    """Errors name the file and the key path under `bridges[i]`."""
    keys = {"name": '"up"', "address": '"h:1"'}
    for line in filter(None, bridge_keys.split("\n")):
        key, _, value = line.partition(" = ")
        keys[key] = value
    body = "\n".join(f"{k} = {v}" for k, v in keys.items())
    rule = topic_keys or 'pattern = "a"'
    text = f"[[bridges]]\n{body}\n[[bridges.topics]]\n{rule}\n"
    with pytest.raises(ConfigError, match=rf"^x.toml: bridges\[0\]\.{message}"):
        config.parse(text, "x.toml")


def test_a_bridge_needs_a_topic_rule_and_a_unique_outbox_name() -> None:
    with pytest.raises(ConfigError, match=r"bridges\[0\].topics: a bridge needs at least one"):
        config.parse('[[bridges]]\nname = "up"\naddress = "h:1"\n', "x.toml")
    with pytest.raises(ConfigError, match="has the name of a queue in"):
        config.parse('[[queues]]\nfilter = "x"\nname = "bridge.up.s.all"\n[[bridges]]\n'
                     'name = "up"\naddress = "h:1"\n[[bridges.topics]]\npattern = "s/#"\n',
                     "x.toml")


def test_reconnect_delays_double_with_jitter_up_to_the_cap() -> None:
    low = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert [low.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    high = Backoff(1.0, 8.0, rand=lambda: 1.0)
    assert [high.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    high.reset()
    assert high.next_delay() == 1.0
