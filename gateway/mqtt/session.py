"""The protocol state of one MQTT session, sans-IO: packets in, packets and events out.

Both ends use it: the broker for each client session (`gateway.broker.session`), the bridge's
client for its upstream connection (`gateway.bridge.client`). It owns what the specification
makes session or connection state and nothing else: packet identifiers, the QoS 1/2 exchanges
in both directions, Receive Maximum flow control, topic aliases, the keepalive rule and the
differences between 3.1.1 and 5.0 in all of these. It never touches a socket, a clock or the
event loop: callers hand it packets (and elapsed time) and send the packets it returns.

Outbound (we send PUBLISH): `publish(item)` allocates a packet id and holds `item` in flight,
counted against the peer's Receive Maximum (`window`); `puback`, `pubrec`, `pubcomp` return the
item their acknowledgement finished (or None for an unknown id); `resend` lists what a resumed
session sends again. Inbound (the peer sends PUBLISH): `receive` resolves the topic alias,
checks the negotiated limits and recognises a QoS 2 duplicate; `expect_ack` counts an answer
the caller owes (against our Receive Maximum) and `ack` builds it; `pubrel` builds PUBCOMP.

In-flight messages and inbound QoS 2 ids belong to the session and survive `connect`, which
starts a new network connection and resets the per-connection state (aliases, limits). Sets and
alias maps are allocated when first needed: an idle session holds one empty dict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, PubComp, Publish, PubRec, PubRel
from gateway.mqtt.properties import Properties
from gateway.mqtt.reasons import MQTTError, Reason, protocol_error

T = TypeVar("T")
UNLIMITED = 65535  # Receive Maximum / packet ids: the protocol's own ceiling
MAX_PACKET = 268_435_460  # the largest packet the wire format can carry


class MqttSession(Generic[T]):
    """One session's protocol state; `T` is what the owner keeps per outbound message."""

    __slots__ = (
        "_aliases_in",
        "_aliases_out",
        "_next_id",
        "_released",
        "_reserved",
        "alias_maximum",
        "alias_maximum_out",
        "inbound_unacked",
        "incoming_qos2",
        "inflight",
        "keepalive",
        "max_packet_out",
        "max_qos",
        "problem_info",
        "receive_maximum",
        "retain_available",
        "send_maximum",
        "version",
    )

    def __init__(self, version: int = MQTT_311) -> None:
        self.version = version
        self.inflight: dict[int, T] = {}  # our PUBLISHes awaiting PUBACK / PUBREC / PUBCOMP
        self.incoming_qos2: set[int] | None = None  # their QoS 2 ids we PUBREC'd, until PUBREL
        self.inbound_unacked = 0  # their QoS 1/2 PUBLISHes not yet fully answered
        self.receive_maximum = UNLIMITED  # what we let the peer have unanswered
        self.send_maximum = UNLIMITED  # what the peer lets us have in flight
        self.max_packet_out = MAX_PACKET
        self.alias_maximum = 0  # topic aliases we accept from the peer
        self.alias_maximum_out = 0  # topic aliases the peer accepts from us
        self.max_qos = 2
        self.retain_available = True
        self.keepalive = 0
        self.problem_info = True
        self._next_id = 1
        self._released: set[int] | None = None  # in flight and past PUBREC: PUBREL is next
        self._reserved: set[int] | None = None  # ids of SUBSCRIBE / UNSUBSCRIBE awaiting an ack
        self._aliases_in: dict[int, str] | None = None
        self._aliases_out: dict[str, int] | None = None

    # ---------------------------------------------------------------- connection scope

    def connect(self, version: int, *, keepalive: int = 0, receive_maximum: int = UNLIMITED,
                send_maximum: int = UNLIMITED, max_packet_out: int = MAX_PACKET,
                alias_maximum: int = 0, alias_maximum_out: int = 0, max_qos: int = 2,
                retain_available: bool = True, problem_info: bool = True) -> None:
        """A network connection starts with these negotiated limits; aliases start empty.
        3.1.1 has no flow control, aliases or problem information: 5.0 values are ignored."""
        v5 = version == MQTT_5
        self.version = version
        self.keepalive = keepalive
        self.receive_maximum = receive_maximum
        self.send_maximum = send_maximum
        self.max_packet_out = max_packet_out if v5 else MAX_PACKET
        self.alias_maximum = alias_maximum if v5 else 0
        self.alias_maximum_out = alias_maximum_out if v5 else 0
        self.max_qos = max_qos
        self.retain_available = retain_available
        self.problem_info = problem_info or not v5
        self.inbound_unacked = 0
        self._aliases_in = self._aliases_out = None

    def silent(self, idle: float) -> bool:
        """Whether a peer not heard from for `idle` seconds broke the keepalive (1.5 times)."""
        return self.keepalive > 0 and idle > self.keepalive * 1.5

    def reason_props(self, text: str) -> Properties:
        """A reason string for a 5.0 peer that did not decline problem information."""
        return {"reason_string": text[:200]} if text and self.problem_info else {}

    def shrink(self) -> None:
        """The connection is gone. CPython dicts and sets never shrink: one that held a burst
        of thousands in flight keeps its table (~40 KB per 1,000) after they were all
        acknowledged, so emptied ones are dropped for the time the session waits offline."""
        if not self.inflight:
            self.inflight = {}
        if not self.incoming_qos2:
            self.incoming_qos2 = None
        if not self._released:
            self._released = None
        self._aliases_in = self._aliases_out = None

    # ---------------------------------------------------------------- outbound PUBLISH

    def window(self) -> int:
        """Free in-flight slots under the peer's Receive Maximum."""
        return self.send_maximum - len(self.inflight)

    def allocate(self) -> int:
        """A packet id in use by no message in flight and no pending SUBSCRIBE."""
        pid = self._next_id
        inflight, reserved = self.inflight, self._reserved
        while pid in inflight or (reserved is not None and pid in reserved):
            pid = pid % UNLIMITED + 1
        self._next_id = pid % UNLIMITED + 1
        return pid

    def publish(self, item: T) -> int:
        """Put `item` in flight as a QoS 1/2 PUBLISH; returns its packet id."""
        pid = self._next_id
        inflight = self.inflight
        if pid in inflight or self._reserved is not None:
            pid = self.allocate()
        else:  # the common case, on every message: the next id is free
            self._next_id = pid % UNLIMITED + 1
        inflight[pid] = item
        return pid

    def restore(self, packet_id: int, item: T, released: bool = False) -> None:
        """An in-flight message read back from storage (after a restart)."""
        self.inflight[packet_id] = item
        if released:
            self._release(packet_id)

    def forget(self, packet_id: int) -> T | None:
        """Stop tracking a message in flight (finished, or taken back by its owner)."""
        item = self.inflight.pop(packet_id, None)
        if self._released is not None:
            self._released.discard(packet_id)
        return item

    def puback(self, packet: PubAck) -> T | None:
        """PUBACK (QoS 1): the message is done; None for an id not in flight."""
        if self._released is not None:
            return self.forget(packet.packet_id)
        return self.inflight.pop(packet.packet_id, None)

    def pubcomp(self, packet: PubComp) -> T | None:
        """PUBCOMP (QoS 2): the message is done; None for an id not in flight."""
        return self.forget(packet.packet_id)

    def pubrec(self, packet: PubRec) -> tuple[T | None, PubRel | None]:
        """PUBREC (QoS 2). A refusal (>= 0x80) finishes the message: (item, None). Otherwise
        the message moves to its release phase: (item, PUBREL to send), or (None, PUBREL
        0x92) for an id not in flight."""
        pid = packet.packet_id
        if packet.reason_code >= 0x80:
            return self.forget(pid), None
        item = self.inflight.get(pid)
        if item is None:
            return None, PubRel(pid, Reason.PACKET_IDENTIFIER_NOT_FOUND)
        self._release(pid)
        return item, PubRel(pid)

    def _release(self, packet_id: int) -> None:
        if self._released is None:
            self._released = set()
        self._released.add(packet_id)

    def released(self, packet_id: int) -> bool:
        return self._released is not None and packet_id in self._released

    def resend(self) -> list[tuple[int, T, bool]]:
        """What a resumed session sends first, in packet id order: (id, item, True) for a
        PUBREL, (id, item, False) for a PUBLISH again with DUP set."""
        return [(pid, item, self.released(pid)) for pid, item in sorted(self.inflight.items())]

    def reserve(self) -> int:
        """A packet id for a SUBSCRIBE or UNSUBSCRIBE, held until `unreserve`."""
        pid = self.allocate()
        if self._reserved is None:
            self._reserved = set()
        self._reserved.add(pid)
        return pid

    def unreserve(self, packet_id: int) -> None:
        if self._reserved is not None:
            self._reserved.discard(packet_id)

    def outgoing_topic(self, topic: str, props: Properties) -> str:
        """The topic to put in an outbound 5.0 PUBLISH: aliases are assigned first come, first
        served up to the peer's Topic Alias Maximum; a known one replaces the topic (empty)
        and is added to `props`."""
        aliases = self._aliases_out
        if aliases is None:
            aliases = self._aliases_out = {}
        alias = aliases.get(topic)
        if alias is not None:
            props["topic_alias"] = alias
            return ""
        if len(aliases) < self.alias_maximum_out:
            alias = aliases[topic] = len(aliases) + 1
            props["topic_alias"] = alias
        return topic

    # ---------------------------------------------------------------- inbound PUBLISH

    def receive(self, packet: Publish) -> str | None:
        """Check an inbound PUBLISH against the session: its topic (the alias resolved), or
        None for a QoS 2 duplicate, to be answered with `PubRec(packet_id)` and not routed.
        A violation raises `MQTTError` with its reason code."""
        topic = packet.topic
        if packet.properties:  # only 5.0 packets have any
            topic = self._resolve_alias(packet)
        if not topic:
            raise MQTTError(Reason.TOPIC_NAME_INVALID, "empty topic name")
        qos = packet.qos
        if qos > self.max_qos:
            raise MQTTError(Reason.QOS_NOT_SUPPORTED, f"QoS {qos} is not supported")
        if packet.retain and not self.retain_available:
            raise MQTTError(Reason.RETAIN_NOT_SUPPORTED, "retained messages are disabled")
        if qos == 2 and self.incoming_qos2 is not None and packet.packet_id in self.incoming_qos2:
            return None
        if (qos and not packet.dup and self.version == MQTT_5
                and self.inbound_unacked >= self.receive_maximum):
            raise MQTTError(Reason.RECEIVE_MAXIMUM_EXCEEDED, "too many unacknowledged QoS 1/2")
        return topic

    def _resolve_alias(self, packet: Publish) -> str:
        topic = packet.topic
        alias = packet.properties.get("topic_alias")
        if alias is None:
            return topic
        if alias == 0 or alias > self.alias_maximum:
            raise MQTTError(Reason.TOPIC_ALIAS_INVALID, f"topic alias {alias} is out of range")
        if topic:
            if self._aliases_in is None:
                self._aliases_in = {}
            self._aliases_in[alias] = topic
            return topic
        known = self._aliases_in.get(alias) if self._aliases_in is not None else None
        if known is None:
            raise protocol_error(f"topic alias {alias} was never set")
        return known

    def expect_ack(self) -> None:
        """The owner will answer an accepted QoS 1/2 PUBLISH (now or after it is stored)."""
        self.inbound_unacked += 1

    def ack(self, packet: Publish, reason: int = 0,
            props: Properties | None = None) -> PubAck | PubRec:
        """The answer to an inbound QoS 1/2 PUBLISH counted by `expect_ack`: PUBACK, or PUBREC
        (the id is then remembered until PUBREL unless `reason` refuses the message). 3.1.1 has
        no reason codes: the peer gets a plain acknowledgement."""
        if self.version != MQTT_5:
            reason, props = 0, None
        pid = packet.packet_id
        if packet.qos == 1:
            self.inbound_unacked -= 1
            return PubAck(pid, reason, props or {})
        if reason < 0x80:
            if self.incoming_qos2 is None:
                self.incoming_qos2 = set()
            self.incoming_qos2.add(pid)
        else:
            self.inbound_unacked -= 1
        return PubRec(pid, reason, props or {})

    def pubrel(self, packet: PubRel) -> PubComp:
        """PUBREL: the QoS 2 exchange ends; PUBCOMP 0x92 for an id we never PUBREC'd."""
        pid = packet.packet_id
        incoming = self.incoming_qos2
        if incoming is None or pid not in incoming:
            return PubComp(pid, Reason.PACKET_IDENTIFIER_NOT_FOUND)
        incoming.discard(pid)
        self.inbound_unacked = max(0, self.inbound_unacked - 1)
        return PubComp(pid)

    def restore_incoming(self, packet_ids: Iterable[int]) -> None:
        """Inbound QoS 2 ids read back from storage (after a restart)."""
        ids = set(packet_ids)
        if ids:
            self.incoming_qos2 = (self.incoming_qos2 or set()) | ids
