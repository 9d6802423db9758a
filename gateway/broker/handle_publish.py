"""PUBLISH in both directions: the inbound QoS 0/1/2 flows and the acknowledgements of outbound
messages (PUBACK, PUBREC, PUBREL, PUBCOMP).

The protocol state of both directions (packet ids, QoS 2 exchanges, receive maximum, topic
aliases) is the session's `MqttSession` (`gateway.mqtt.session`, shared with the bridge's
client); `Publishing` adds what is the broker's: authorization, routing, the store, each
collaborator handed in when the broker has opened its store.

Inbound QoS 2 uses method B of the specification: the message is routed when the PUBLISH
arrives and its packet id is remembered until PUBREL, so a duplicate PUBLISH is acknowledged
but not routed twice. A producer's PUBACK/PUBREC is sent only after everything the message
wrote to the store is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway.messages import (
    Message,
    PublishResult,
    answer_after_commit,
    answer_now,
    received,
)
from gateway.mqtt.packets import MQTT_5, PubAck, PubComp, Publish, PubRec, PubRel
from gateway.mqtt.reasons import Reason

if TYPE_CHECKING:
    from gateway.broker.access import Access
    from gateway.broker.connection import Connection
    from gateway.broker.server import Stats
    from gateway.broker.session import Outgoing
    from gateway.queues.engine import QueueEngine
    from gateway.store.committer import Committer
    from gateway.store.disk import DiskBudget
    from gateway.store.sessions import SessionStore

_REFUSALS: dict[int, str] = {Reason.NOT_AUTHORIZED: "not authorized",
                             Reason.TOPIC_NAME_INVALID: "topic too deep or too long",
                             Reason.QUOTA_EXCEEDED: "quota exceeded"}


class Core(Protocol):
    """What PUBLISH handling needs of the broker itself."""

    @property
    def overloaded(self) -> bool:
        """Whether the memory budget is exceeded (producers wait)."""

    def pause_producer(self, conn: Connection) -> None: ...
    def publish(self, message: Message) -> PublishResult: ...
    def outgoing_done(self, conn: Connection, out: Outgoing, packet_id: int,
                      reason: int = 0) -> None: ...


class Publishing:
    """The PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP handlers and what they use."""

    __slots__ = ("_access", "_clock", "_committer", "_core", "_disk", "_engine",
                 "_session_store", "_stats")

    def __init__(self, core: Core, *, access: Access, stats: Stats, disk: DiskBudget,
                 committer: Committer, session_store: SessionStore, engine: QueueEngine,
                 clock: Callable[[], float]) -> None:
        self._core = core
        self._access = access
        self._stats = stats
        self._disk = disk
        self._committer = committer
        self._session_store = session_store
        self._engine = engine
        self._clock = clock

    def publish(self, conn: Connection, p: Publish) -> None:
        core = self._core
        session = conn.session
        assert session is not None
        if core.overloaded:
            conn.push_front(p)
            core.pause_producer(conn)
            return
        mqtt = session.mqtt
        topic = mqtt.receive(p)
        if topic is None:  # a QoS 2 PUBLISH sent again before PUBREL: answered, not routed twice
            conn.send_packet(PubRec(p.packet_id))
            return
        stats = self._stats
        stats.messages_received += 1
        refused = self._access.publish_reason(conn.username, conn.client_id, topic)
        if refused:
            stats.publish_refused += 1
            self._acknowledge(conn, p, refused, False)
            return
        if p.qos and self._disk.refuses():  # the store is at its disk budget (store/disk.py)
            if mqtt.version != MQTT_5:
                conn.close()  # 3.1.1 cannot refuse a message: no PUBACK, it is sent again
                return
            self._acknowledge(conn, p, Reason.QUOTA_EXCEEDED, False)
            return
        message = received(topic, p.payload, p.qos, p.retain, p.properties, conn.client_id,
                           self._clock())
        result = core.publish(message)
        if result.blocked is not None:
            conn.push_front(p)
            conn.block()
            self._engine.wait_for_room(result.blocked, conn.unblock)
            return
        reason = result.reason if result.reason else (0 if result.matched else
                                                      Reason.NO_MATCHING_SUBSCRIBERS)
        durable = result.durable
        if p.qos == 2 and reason < 0x80 and session.persistent:
            # in the same commit as the message: a PUBLISH resent after a crash is a duplicate
            self._session_store.receive_qos2(session.client_id, p.packet_id)
            durable = True
        self._acknowledge(conn, p, reason, durable)

    def _acknowledge(self, conn: Connection, p: Publish, reason: int, durable: bool) -> None:
        """PUBACK/PUBREC now, or after the commit when the message (or an earlier one) is
        pending."""
        if p.qos == 0:
            return
        assert conn.session is not None
        conn.session.mqtt.expect_ack()
        if answer_now(conn, durable):
            _answer(conn, p, reason, True)
        else:
            answer_after_commit(conn, self._committer.on_commit,
                                lambda stored: _answer(conn, p, reason, stored))

    def pubrel(self, conn: Connection, p: PubRel) -> None:
        session = conn.session
        assert session is not None
        reply = session.mqtt.pubrel(p)
        if not reply.reason_code and session.persistent:
            self._session_store.release_qos2(session.client_id, p.packet_id)
        conn.send_packet(reply)

    def puback(self, conn: Connection, p: PubAck) -> None:
        session = conn.session
        assert session is not None
        out = session.mqtt.puback(p)
        if out is not None:  # the session forgot its packet id: 0 says there is none to free
            self._core.outgoing_done(conn, out, 0, p.reason_code)

    def pubrec(self, conn: Connection, p: PubRec) -> None:
        session = conn.session
        assert session is not None
        out, reply = session.mqtt.pubrec(p)
        if reply is None:  # refused: the message is finished
            if out is not None:
                self._core.outgoing_done(conn, out, 0, p.reason_code)
            return
        if out is not None and out.store_id:
            self._session_store.release(out.store_id, p.packet_id)
        conn.send_packet(reply)

    def pubcomp(self, conn: Connection, p: PubComp) -> None:
        session = conn.session
        assert session is not None
        out = session.mqtt.pubcomp(p)
        if out is not None:
            self._core.outgoing_done(conn, out, 0, 0)


def _answer(conn: Connection, p: Publish, reason: int, stored: bool) -> None:
    session = conn.session
    if conn.closing or session is None:
        return
    if not stored:  # a 3.1.1 client cannot be refused: no answer, it sends the message again
        if session.mqtt.version != MQTT_5:
            conn.close()
            return
        reason = Reason.UNSPECIFIED_ERROR
    props = None
    if reason >= 0x80:
        props = conn.reason_props(_REFUSALS.get(reason, "message not stored"))
    conn.send_packet(session.mqtt.ack(p, reason, props))
