"""A bridge's topic rules: which local topics go up, which upstream topics come down, and how
their names are remapped; the outbox queues the `out` rules need. Plain functions, no I/O.

A rule is Mosquitto's `topic` line: `pattern` with a `direction`, a QoS and two prefixes. The
local filter is `local_prefix + pattern`, the remote one `remote_prefix + pattern`; a topic
crossing the bridge swaps one prefix for the other. A local message that matches several `out`
rules is sent once, remapped by the first of them (as Mosquitto does).

Each `out` rule stores its messages in an ordinary durable queue named
`bridge.<bridge>.<filter spelled as a name>` (`sensors/+/temp` -> `bridge.cloud.sensors.any.temp`),
declared alongside the config's `[[queues]]` so that it reloads and retires like one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import BRIDGE_NAME, BridgeSpec, BridgeTopic, Config, QueueSpec, split_address
from gateway.mqtt.topics import matches, topic_filter_error

OUTBOX_PREFIX = "bridge."
_NOT_NAME = re.compile(r"[^-0-9A-Za-z_]")
_RESERVED = ("$q/", "$queue/", "$share/")


@dataclass(slots=True, frozen=True)
class OutRule:
    """Local -> upstream: messages of `local_filter`, stored in `queue`, sent at `qos`."""

    local_filter: str
    local_prefix: str
    remote_prefix: str
    qos: int
    queue: str

    def to_remote(self, topic: str) -> str | None:
        """The upstream topic, or None when `topic` lacks the prefix (`p/#` matches `p`)."""
        if not topic.startswith(self.local_prefix):
            return None
        remote = self.remote_prefix + topic[len(self.local_prefix):]
        return remote or None


@dataclass(slots=True, frozen=True)
class InRule:
    """Upstream -> local: upstream messages of `remote_filter`, subscribed at `qos`."""

    remote_filter: str
    local_prefix: str
    remote_prefix: str
    qos: int

    def to_local(self, topic: str) -> str | None:
        """The local topic, or None when the upstream topic lacks the prefix (a `p/#` filter
        also matches `p` itself)."""
        if not topic.startswith(self.remote_prefix):
            return None
        rest = topic[len(self.remote_prefix):]
        return self.local_prefix + rest if self.local_prefix + rest else None


class TopicMap:
    """The compiled rules of one bridge."""

    def __init__(self, spec: BridgeSpec) -> None:
        names = outbox_names(spec)
        self.out: list[OutRule] = [
            OutRule(t.local_prefix + t.pattern, t.local_prefix, t.remote_prefix, min(t.qos, 1),
                    names[i])
            for i, t in enumerate(spec.topics) if t.direction in ("out", "both")]
        self.by_queue = {rule.queue: rule for rule in self.out}
        self.inbound: list[InRule] = [
            InRule(t.remote_prefix + t.pattern, t.local_prefix, t.remote_prefix, t.qos)
            for t in spec.topics if t.direction in ("in", "both")]

    def first_out(self, topic: str) -> OutRule | None:
        """The rule that sends a local `topic` upstream (the first that matches)."""
        for rule in self.out:
            if matches(rule.local_filter, topic):
                return rule
        return None

    def to_local(self, topic: str) -> str | None:
        """The local topic of an upstream message (first matching rule), or None."""
        for rule in self.inbound:
            if matches(rule.remote_filter, topic):
                return rule.to_local(topic)
        return None

    def subscriptions(self) -> list[tuple[str, int]]:
        """(remote filter, QoS) to subscribe upstream, each filter once at its highest QoS."""
        best: dict[str, int] = {}
        for rule in self.inbound:
            best[rule.remote_filter] = max(best.get(rule.remote_filter, 0), rule.qos)
        return list(best.items())


# ---------------------------------------------------------------------------- outbox queues

def outbox_names(spec: BridgeSpec) -> dict[int, str]:
    """Queue name per `out`/`both` rule index: `bridge.<name>.<filter as name>[-n]`."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for i, t in enumerate(spec.topics):
        if t.direction == "in":
            continue
        base = OUTBOX_PREFIX + spec.name + "." + filter_as_name(t.local_prefix + t.pattern)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        names[i] = name
    return names


def filter_as_name(topic_filter: str) -> str:
    """`sensors/+/temp` -> `sensors.any.temp`, `a/#` -> `a.all`; other characters -> `_`."""
    levels = ["any" if level == "+" else "all" if level == "#" else _NOT_NAME.sub("_", level)
              for level in topic_filter.split("/")]
    return ".".join(levels)


def outbox_specs(bridges: Sequence[BridgeSpec]) -> list[QueueSpec]:
    """The queue definitions of every bridge's outbox: never dead-lettered, never timed out
    (a PUBACK lost with the connection is handled by redelivery on reconnect)."""
    specs: list[QueueSpec] = []
    for bridge in bridges:
        names = outbox_names(bridge)
        for i, name in names.items():
            t = bridge.topics[i]
            specs.append(QueueSpec(
                filter=t.local_prefix + t.pattern, name=name, max_messages=bridge.max_messages,
                max_bytes=bridge.max_bytes, overflow=bridge.overflow,
                max_inflight=bridge.max_inflight, ack_timeout=0, max_deliveries=0))
    return specs


def queue_specs(config: Config) -> list[QueueSpec]:
    """Every queue the engine should know from the config: `[[queues]]` and bridge outboxes."""
    return [*config.queues, *outbox_specs(config.bridges)]


# ---------------------------------------------------------------------------- validation

def bridge_error(spec: BridgeSpec) -> str | None:
    """`key: what is wrong` for the first mistake in a bridge definition, or None."""
    if not BRIDGE_NAME.fullmatch(spec.name):
        return f"name: {spec.name!r} must match [0-9A-Za-z][-0-9A-Za-z_]*"
    try:
        split_address(spec.address)
    except ValueError as e:
        return f"address: {e}"
    if not spec.tls:
        for key in ("cafile", "certfile", "keyfile", "insecure"):
            if getattr(spec, key):
                return f"{key}: only used with tls = true"
    if spec.keyfile and not spec.certfile:
        return "keyfile: needs certfile"
    if spec.password and not spec.username and spec.protocol == "3.1.1":
        return "password: MQTT 3.1.1 needs a username with a password"
    if spec.reconnect_min > spec.reconnect_max:
        return "reconnect_min: must not be above reconnect_max"
    if not spec.topics:
        return "topics: a bridge needs at least one [[bridges.topics]] rule"
    for i, topic in enumerate(spec.topics):
        error = topic_rule_error(topic)
        if error:
            return f"topics[{i}].{error}"
    return None


def topic_rule_error(t: BridgeTopic) -> str | None:
    error = topic_filter_error(t.pattern)
    if error or t.pattern.startswith(_RESERVED):
        return f"pattern: {t.pattern!r} is not a usable topic filter ({error or 'reserved'})"
    for key in ("local_prefix", "remote_prefix"):
        prefix: str = getattr(t, key)
        if "+" in prefix or "#" in prefix or "\0" in prefix:
            return f"{key}: {prefix!r} must not contain wildcards"
        if prefix.startswith(_RESERVED):
            return f"{key}: {prefix!r} starts with a reserved prefix"
        if topic_filter_error(prefix + t.pattern):
            return f"{key}: {prefix + t.pattern!r} is not a usable topic filter"
    return None
