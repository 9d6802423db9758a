"""A bridge's topic rules: which local topics go up, which upstream topics come down, and how
their names are remapped; the outbox queues the `out` rules need. Plain functions, no I/O.

A rule is Mosquitto's `topic` line: `pattern` with a `direction`, a QoS and two prefixes. The
local filter is `local_prefix + pattern`, the remote one `remote_prefix + pattern`; a topic
crossing the bridge swaps one prefix for the other. A local message that matches several `out`
rules is sent once, remapped by the first of them (as Mosquitto does).

Each `out` rule stores its messages in an ordinary durable queue named
`bridge.<bridge>.<filter spelled as a name>` (`sensors/+/temp` -> `bridge.cloud.sensors.any.temp`),
declared alongside the config's `[[queues]]` so that it reloads and retires like one; those
names, and the checks of a bridge definition, are config meaning (`gateway.config`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import BridgeSpec, outbox_names
from gateway.mqtt.topics import matches


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
