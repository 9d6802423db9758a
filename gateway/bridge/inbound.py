"""Upstream -> local: messages the upstream sends down the bridge, published into the broker.

Each message takes the broker's one path (`Host.publish`) under its local topic, with the
bridge's local client id `$bridge/<name>` as its origin (so the outbox never sends it back up).
Its PUBACK/PUBREC goes upstream only once everything it wrote locally is committed, in arrival
order, as the broker does for its own producers: a message the upstream has forgotten is on
our disk. When a local `block` queue is full or the memory budget is reached, the bridge stops
reading from the upstream (TCP backpressure) and resumes when there is room.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.bridge.client import MqttClient
from gateway.bridge.host import Host
from gateway.bridge.rules import TopicMap
from gateway.messages import Message, PublishResult, answer_after_commit, answer_now, received
from gateway.mqtt.packets import Publish

OVERLOAD_RETRY = 0.2  # seconds between attempts while the broker's memory budget is exceeded


class Inbound:
    def __init__(self, client_id: str, broker: Host, topics: TopicMap) -> None:
        self.client_id = client_id
        self._broker = broker
        self._topics = topics
        self.client: MqttClient | None = None
        self._held: deque[tuple[Publish, Message]] = deque()
        self._waiting = False
        self.acks_waiting = 0
        self.received = 0
        self.unmapped = 0

    def attach(self, client: MqttClient) -> None:
        self.client = client
        self._held.clear()
        self._waiting = False

    def detach(self) -> None:
        """Unacknowledged messages are the upstream's to send again on the next connection."""
        self.client = None
        self._held.clear()
        self._waiting = False

    def on_message(self, packet: Publish) -> None:
        client = self.client
        if client is None:
            return
        local = self._topics.to_local(packet.topic)
        if local is None:
            self.unmapped += 1
            client.acknowledge(packet)
            return
        self._held.append((packet, received(local, packet.payload, packet.qos, packet.retain,
                                            packet.properties, self.client_id,
                                            self._broker.clock())))
        if not self._waiting:
            self._drain()

    def _drain(self) -> None:
        """Publish held messages in order until one has to wait for room."""
        client = self.client
        broker = self._broker
        while self._held and client is not None:
            packet, message = self._held[0]
            if broker.overloaded:
                self._wait()
                asyncio.get_running_loop().call_later(OVERLOAD_RETRY, self._resume)
                return
            result = broker.publish(message)
            if result.blocked is not None:
                self._wait()
                broker.engine.wait_for_room(result.blocked, self._room)
                return
            self._held.popleft()
            self.received += 1
            self._acknowledge(client, packet, result)
        if self._waiting:
            self._waiting = False
            if client is not None:
                client.resume_reading()

    def _wait(self) -> None:
        if not self._waiting and self.client is not None:
            self._waiting = True
            self.client.pause_reading()

    def _room(self) -> None:
        # called at the end of a queue-engine call: publish again from a fresh loop turn
        asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        if self._waiting:
            self._drain()

    def _acknowledge(self, client: MqttClient, packet: Publish, result: PublishResult) -> None:
        if packet.qos == 0:
            return
        reason = result.reason if result.reason >= 0x80 else 0
        if answer_now(self, result.durable):
            client.acknowledge(packet, reason)
        else:
            answer_after_commit(self, self._broker.committer.on_commit,
                                lambda stored: self._answer(client, packet, reason, stored))

    @staticmethod
    def _answer(client: MqttClient, packet: Publish, reason: int, stored: bool) -> None:
        if stored:
            client.acknowledge(packet, reason)
        else:  # not stored: let the upstream send it again later
            client.abort("the local store failed to commit a message from the upstream")
