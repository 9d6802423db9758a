"""Per-client session state: subscriptions, outbound flow control, the backlog; the MQTT
protocol state (packet ids, messages in flight, inbound QoS 2 ids, the negotiated limits) is
`mqtt`, a sans-IO `gateway.mqtt.session.MqttSession`, as the bridge's client keeps one too.

A session outlives its connection when it is persistent (3.1.1 clean session 0, or a 5.0
session expiry above zero). Outbound QoS 1/2 messages are either in flight (counted against the
client's Receive Maximum) or waiting in `backlog` (`gateway.broker.backlog`: a RAM read-ahead,
the rest on disk); QoS 0 messages are sent at once when connected (up to the connection's output
cap) and dropped when not. The session never touches a socket: it hands packets to `link`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gateway.broker.backlog import Backlog, BacklogContext, Outgoing
from gateway.mqtt.packets import Subscription, Will
from gateway.mqtt.session import MqttSession
from gateway.queues.model import Delivery

__all__ = ["Link", "Outgoing", "Session", "SubEntry"]


@dataclass(slots=True)
class SubEntry:
    """One subscription of one session, as the router stores it."""

    session: Session
    options: Subscription
    identifier: int = 0


class Link(Protocol):
    """What a session needs from its live connection."""

    def send_publish(self, out: Outgoing, packet_id: int) -> None: ...
    def send_pubrel(self, packet_id: int) -> None: ...
    def writable(self) -> bool: ...


@dataclass(slots=True, eq=False)
class Session:
    client_id: str
    backlog: Backlog
    expiry: int = 0
    subscriptions: dict[str, SubEntry] = field(default_factory=dict)
    link: Link | None = None
    mqtt: MqttSession[Outgoing] = field(default_factory=MqttSession)
    will: Will | None = None
    username: str | None = None
    claimed: bool = True  # False: stored before owners were kept; the next user claims it
    disconnected_at: float = 0.0
    protocol_level: int = 4
    holding: bool = False

    @classmethod
    def new(cls, client_id: str, backlogs: BacklogContext, expiry: int = 0) -> Session:
        return cls(client_id, Backlog(backlogs), expiry)

    @property
    def persistent(self) -> bool:
        return self.expiry > 0

    @property
    def connected(self) -> bool:
        return self.link is not None

    def window(self) -> int:
        """Free QoS 1/2 in-flight slots (Receive Maximum flow control)."""
        if self.link is None:
            return 0
        mqtt = self.mqtt  # `MqttSession.window`, inline: asked for every message
        return mqtt.send_maximum - len(mqtt.inflight)

    def queue_capacity(self) -> int:
        """How many queue deliveries this session can take right now."""
        if self.link is None or self.backlog or self.holding or not self.link.writable():
            return 0
        return max(0, self.window())

    def deliver(self, out: Outgoing) -> bool:
        """Send now, or queue; False when the message was dropped (offline QoS 0, queue full)."""
        link = self.link
        if out.qos == 0:
            # Sent even while the socket is paused: a client that stops reading then fills its
            # output buffer and is disconnected (mqtt.client_output_buffer) instead of silently
            # losing every QoS 0 message for as long as it stays connected.
            if link is None:
                return False
            link.send_publish(out, 0)
            return True
        if link is not None and not self.backlog and self.window() > 0 and link.writable():
            self._send(out)
            return True
        return self.backlog.push(out, self.client_id, link is not None)

    def _send(self, out: Outgoing) -> None:
        self.backlog.sent(out)
        assert self.link is not None
        self.link.send_publish(out, self.mqtt.publish(out))

    def queue_deliver(self, delivery: Delivery) -> None:
        """A queue hands this session (a consumer) one message (`queues.engine.Consumer`), with
        the subscription identifiers and retain-as-published of the filters that name it."""
        ids: list[int] = []
        retain = False
        for topic_filter in delivery.filters:
            entry = self.subscriptions.get(topic_filter)
            if entry is not None:
                if entry.identifier:
                    ids.append(entry.identifier)
                retain = retain or entry.options.retain_as_published
        self.deliver(Outgoing(delivery.message, delivery.qos, retain and delivery.message.retain,
                              tuple(ids), 0, delivery.token, delivery.queue, delivery.dup))

    def drain(self) -> None:
        """Move queued messages into flight while the window and the socket allow; read the
        next ones from disk when the read-ahead runs low."""
        link = self.link
        if link is None:
            return
        backlog, mqtt = self.backlog, self.mqtt
        while backlog.ram and mqtt.send_maximum > len(mqtt.inflight) and link.writable():
            out = backlog.pop()
            assert out is not None
            self._send(out)
        if backlog.overflowing:
            backlog.check_episode(self.client_id)
        if backlog.disk_count:
            backlog.refill(self.client_id, self.drain)

    def resume(self, link: Link) -> None:
        """A client reconnected to this session: resend what was in flight, then drain."""
        self.link = link
        for packet_id, out, released in self.mqtt.resend():
            if released:
                link.send_pubrel(packet_id)
            else:
                out.dup = True
                link.send_publish(out, packet_id)
        self.drain()

    def detach(self) -> None:
        """The connection is gone: the protocol state keeps what the session owes and drops
        what only the connection used."""
        self.link = None
        self.backlog.flush_done(self.client_id)
        self.backlog.offline()
        self.mqtt.shrink()
