"""PUBLISH in both directions: the inbound QoS 0/1/2 flows and the acknowledgements of outbound
messages (PUBACK, PUBREC, PUBREL, PUBCOMP).

Inbound QoS 2 uses method B of the specification: the message is routed when the PUBLISH
arrives and its packet id is remembered until PUBREL, so a duplicate PUBLISH is acknowledged
but not routed twice. A producer's PUBACK/PUBREC is sent only after everything the message
wrote to the store is committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.messages import received
from gateway.mqtt.packets import MQTT_5, PubAck, PubComp, Publish, PubRec, PubRel
from gateway.mqtt.reasons import MQTTError, Reason, protocol_error

if TYPE_CHECKING:
    from gateway.broker.connection import Connection

_REFUSALS: dict[int, str] = {Reason.NOT_AUTHORIZED: "not authorized",
                             Reason.TOPIC_NAME_INVALID: "topic too deep or too long",
                             Reason.QUOTA_EXCEEDED: "quota exceeded"}


def handle_publish(conn: Connection, p: Publish) -> None:
    broker = conn.broker
    session = conn.session
    assert session is not None
    if broker.overloaded:
        conn.push_front(p)
        broker.pause_producer(conn)
        return
    topic = _resolve_topic(conn, p)
    settings = broker.config.mqtt
    if p.qos > settings.max_qos:
        raise MQTTError(Reason.QOS_NOT_SUPPORTED, f"QoS {p.qos} is not supported")
    if p.retain and not settings.retain_available:
        raise MQTTError(Reason.RETAIN_NOT_SUPPORTED, "retained messages are disabled")
    if p.qos == 2 and p.packet_id in session.incoming_qos2:
        conn.send_packet(PubRec(p.packet_id))
        return
    if (p.qos and not p.dup and conn.version == MQTT_5
            and conn.inbound_unacked >= settings.receive_maximum):
        raise MQTTError(Reason.RECEIVE_MAXIMUM_EXCEEDED, "too many unacknowledged QoS 1/2")
    broker.stats.messages_received += 1
    refused = broker.access.publish_reason(conn.username, conn.client_id, topic)
    if refused:
        broker.stats.publish_refused += 1
        _acknowledge(conn, p, refused if conn.version == MQTT_5 else 0, False)
        return
    if p.qos and broker.disk.refuses():  # the store is at its disk budget (store/disk.py)
        if conn.version != MQTT_5:
            conn.close()  # 3.1.1 cannot refuse a message: no PUBACK, the client sends it again
            return
        _acknowledge(conn, p, Reason.QUOTA_EXCEEDED, False)
        return
    message = received(topic, p.payload, p.qos, p.retain, p.properties, conn.client_id,
                       broker.clock())
    result = broker.publish(message)
    if result.blocked is not None:
        conn.push_front(p)
        conn.block()
        broker.engine.wait_for_room(result.blocked, conn.unblock)
        return
    reason = result.reason if result.reason else (0 if result.matched else
                                                  Reason.NO_MATCHING_SUBSCRIBERS)
    durable = result.durable
    if p.qos == 2 and reason < 0x80 and session.persistent:
        # in the same commit as the message: a PUBLISH resent after a crash is a duplicate
        broker.session_store.receive_qos2(session.client_id, p.packet_id)
        durable = True
    _acknowledge(conn, p, reason if conn.version == MQTT_5 else 0, durable)


def _resolve_topic(conn: Connection, p: Publish) -> str:
    topic = p.topic
    alias = p.properties.get("topic_alias") if conn.version == MQTT_5 else None
    if alias is not None:
        if alias == 0 or alias > conn.broker.config.mqtt.topic_alias_maximum:
            raise MQTTError(Reason.TOPIC_ALIAS_INVALID, f"topic alias {alias} is out of range")
        if topic:
            if conn.aliases_in is None:
                conn.aliases_in = {}
            conn.aliases_in[alias] = topic
        else:
            known = conn.aliases_in.get(alias) if conn.aliases_in else None
            if known is None:
                raise protocol_error(f"topic alias {alias} was never set")
            topic = known
    if not topic:
        raise MQTTError(Reason.TOPIC_NAME_INVALID, "empty topic name")
    return topic


def _acknowledge(conn: Connection, p: Publish, reason: int, durable: bool) -> None:
    """PUBACK/PUBREC now, or after the commit when the message (or an earlier one) is pending."""
    if p.qos == 0:
        return
    conn.inbound_unacked += 1
    if not durable and not conn.acks_waiting:
        _send_ack(conn, p, reason)
        return
    conn.acks_waiting += 1

    def committed(ok: bool) -> None:
        conn.acks_waiting -= 1
        if ok:
            _send_ack(conn, p, reason)
        elif conn.version == MQTT_5:
            _send_ack(conn, p, Reason.UNSPECIFIED_ERROR)
        else:
            conn.close()

    conn.broker.committer.on_commit(committed)


def _send_ack(conn: Connection, p: Publish, reason: int) -> None:
    if conn.closing:
        return
    props = conn.reason_props(_REFUSALS.get(reason, "message not stored")) if reason >= 0x80 else {}
    if p.qos == 1:
        conn.inbound_unacked -= 1
        conn.send_packet(PubAck(p.packet_id, reason, props))
    else:
        assert conn.session is not None
        if reason < 0x80:
            conn.session.hold_qos2((p.packet_id,))
        else:
            conn.inbound_unacked -= 1
        conn.send_packet(PubRec(p.packet_id, reason, props))


def handle_pubrel(conn: Connection, p: PubRel) -> None:
    session = conn.session
    assert session is not None
    if session.release_qos2(p.packet_id):
        if session.persistent:
            conn.broker.session_store.release_qos2(session.client_id, p.packet_id)
        conn.inbound_unacked = max(0, conn.inbound_unacked - 1)
        conn.send_packet(PubComp(p.packet_id))
    else:
        conn.send_packet(PubComp(p.packet_id, Reason.PACKET_IDENTIFIER_NOT_FOUND))


def handle_puback(conn: Connection, p: PubAck) -> None:
    session = conn.session
    assert session is not None
    out = session.acknowledge(p.packet_id)
    if out is not None:
        conn.broker.outgoing_done(conn, out, p.packet_id, p.reason_code)


def handle_pubrec(conn: Connection, p: PubRec) -> None:
    session = conn.session
    assert session is not None
    if p.reason_code >= 0x80:
        out = session.acknowledge(p.packet_id)
        if out is not None:
            conn.broker.outgoing_done(conn, out, p.packet_id, p.reason_code)
        return
    out = session.received(p.packet_id)
    if out is None:
        conn.send_packet(PubRel(p.packet_id, Reason.PACKET_IDENTIFIER_NOT_FOUND))
        return
    if out.store_id:
        conn.broker.session_store.release(out.store_id, p.packet_id)
    conn.send_packet(PubRel(p.packet_id))


def handle_pubcomp(conn: Connection, p: PubComp) -> None:
    session = conn.session
    assert session is not None
    out = session.acknowledge(p.packet_id)
    if out is not None:
        conn.broker.outgoing_done(conn, out, p.packet_id, 0)
