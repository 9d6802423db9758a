"""Local -> upstream: the bridge as a consumer of its outbox queues.

The outbox is one ordinary durable queue per `out` rule. While the uplink is up, the bridge is
their only consumer; its capacity is the free part of the upstream in-flight window
(`max_inflight`, capped by the upstream's Receive Maximum). Each delivery is published upstream
under its remapped topic and acknowledged to the queue engine, which deletes it from disk, only
when the upstream's PUBACK arrives. When the uplink drops, `detach` hands every unacknowledged
message back to the head of its queue, so they go again, in order, on the next connection.

Deliveries that must not go up are acknowledged without sending: messages that came down this
same bridge (no loops on `both` rules), messages an earlier rule already sends, and messages
too large for the upstream's Maximum Packet Size (which would otherwise stall the queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.bridge.client import MqttClient
from gateway.bridge.rules import OutRule, TopicMap
from gateway.queuenames import QUEUE_PREFIX
from gateway.queues.model import Delivery

if TYPE_CHECKING:
    from gateway.queues.engine import QueueEngine

PACKET_OVERHEAD = 16  # fixed header, topic length and packet id of a PUBLISH, roughly
REFUSED = 0x80


class Outbox:
    """Implements the queue engine's `Consumer` protocol for one bridge."""

    def __init__(self, client_id: str, engine: QueueEngine, topics: TopicMap,
                 clock: Callable[[], float], report: Callable[[str], None]) -> None:
        self.client_id = client_id
        self._engine = engine
        self._topics = topics
        self._clock = clock
        self._report = report
        self.client: MqttClient | None = None
        self.window = 0
        self.inflight: dict[int, int] = {}  # upstream packet id -> engine token
        self.sent = 0  # confirmed by the upstream (PUBACK) or written at QoS 0
        self.skipped = 0  # looped back, duplicate of an earlier rule, or too large
        self.refused = 0  # PUBACK >= 0x80 from a 5.0 upstream

    # -- connection ------------------------------------------------------------------------

    def attach(self, client: MqttClient, max_inflight: int) -> None:
        """The uplink is up: join every outbox queue; deliveries start at once."""
        self.client = client
        self.window = max(1, min(max_inflight, client.receive_maximum))
        for rule in self._topics.out:
            self._engine.subscribe(QUEUE_PREFIX + rule.queue, self, rule.qos)

    def detach(self) -> None:
        """The uplink is down: unacknowledged messages go back to the head of their queue."""
        self.client = None
        self.inflight.clear()
        self._engine.detach(self)

    def writable(self) -> None:
        """The socket drained below its high-water mark: there may be room again."""
        self._engine.consumer_ready(self)

    # -- the Consumer protocol -------------------------------------------------------------

    def queue_capacity(self) -> int:
        client = self.client
        if client is None or not client.writable or not client.connected:
            return 0
        return max(0, self.window - len(self.inflight))

    def queue_deliver(self, delivery: Delivery) -> None:
        client = self.client
        if client is None:  # no capacity was offered: it stays in flight until `detach`
            return
        rule = self._topics.by_queue.get(delivery.queue)
        message = delivery.message
        remote = self._remote_topic(rule, message.topic, message.client_id)
        if rule is None or remote is None:
            self._skip(delivery)
            return
        size = len(remote.encode()) + len(message.payload) + PACKET_OVERHEAD
        if size > client.maximum_packet_size:
            self._report(f"message on {message.topic} ({size} bytes) exceeds the upstream's "
                         f"maximum packet size ({client.maximum_packet_size}); dropped")
            self._skip(delivery)
            return
        pid = client.publish(remote, message.payload, delivery.qos, message.retain,
                             message.properties_at(self._clock()), delivery.dup)
        if delivery.qos:
            self.inflight[pid] = delivery.token
        else:
            self.sent += 1

    def _remote_topic(self, rule: OutRule | None, topic: str, origin: str) -> str | None:
        if rule is None or origin == self.client_id:
            return None  # it came down this bridge: sending it back up would loop
        if self._topics.first_out(topic) is not rule:
            return None  # an earlier rule sends it
        return rule.to_remote(topic)

    def _skip(self, delivery: Delivery) -> None:
        """Consume without sending (the engine must not be called back synchronously)."""
        self.skipped += 1
        if delivery.qos:
            asyncio.get_running_loop().call_soon(self._engine.ack, self, delivery.token)

    # -- acknowledgements ------------------------------------------------------------------

    def upstream_ack(self, packet_id: int, reason: int) -> None:
        """PUBACK: the upstream has the message; the queue may forget it."""
        token = self.inflight.pop(packet_id, None)
        if token is None:
            return
        if reason >= REFUSED:
            self.refused += 1
            self._report(f"the upstream refused a message (PUBACK 0x{reason:02X}); dropped")
        else:
            self.sent += 1
        self._engine.ack(self, token)
