"""SUBSCRIBE and UNSUBSCRIBE: filter checks, shared groups, queue consumption, retained delivery.

Filters starting with `$q/` or `$queue/` are consumer registrations with the queue engine, not
router entries. Rejections of one filter are SUBACK reason codes (return values), never
exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.broker.session import Outgoing, SubEntry
from gateway.mqtt.packets import MQTT_5, Suback, Subscribe, Subscription, Unsuback, Unsubscribe
from gateway.mqtt.reasons import Reason, protocol_error, suback_code_v311
from gateway.mqtt.topics import parse_shared, topic_filter_error

if TYPE_CHECKING:
    from gateway.broker.connection import Connection
    from gateway.broker.session import Session


def handle_subscribe(conn: Connection, p: Subscribe) -> None:
    session = conn.session
    assert session is not None
    ident = p.properties.get("subscription_identifier", [0])[0]
    codes: list[int] = []
    retained: list[tuple[Subscription, int]] = []
    session.holding = True  # queue deliveries wait until the SUBACK is out
    try:
        for sub in p.subscriptions:
            code, send_retained = subscribe_one(conn, session, sub, ident)
            codes.append(code if conn.version == MQTT_5 else suback_code_v311(code))
            if send_retained:
                retained.append((sub, code))
    finally:
        session.holding = False
    conn.send_packet(Suback(p.packet_id, codes))
    for sub, granted in retained:
        _send_retained(conn, session, sub, granted, ident)
    conn.broker.session_changed(session, [sub.filter for sub in p.subscriptions])
    conn.broker.consumer_ready(session)


def subscribe_one(conn: Connection, session: Session, sub: Subscription,
                  ident: int) -> tuple[int, bool]:
    """(SUBACK reason code, whether retained messages follow) for one filter."""
    broker = conn.broker
    error = topic_filter_error(sub.filter)
    if error:
        return Reason.TOPIC_FILTER_INVALID, False
    if broker.limits.subscription_refused(broker, session, sub.filter):
        return Reason.QUOTA_EXCEEDED, False
    granted = min(sub.qos, broker.config.mqtt.max_qos)
    entry = SubEntry(session, Subscription(sub.filter, granted, sub.no_local,
                                           sub.retain_as_published, sub.retain_handling), ident)
    refused = broker.subscription_reason(conn.username, conn.client_id, sub.filter)
    if refused:
        return refused, False
    if broker.engine.is_queue_filter(sub.filter):
        code = broker.engine.subscribe(sub.filter, session, granted)
        if code:
            return code, False
        session.subscriptions[sub.filter] = entry
        return granted, False
    try:
        shared = parse_shared(sub.filter)
    except ValueError:
        return Reason.TOPIC_FILTER_INVALID, False
    if shared is not None and sub.no_local:
        raise protocol_error("no local on a shared subscription")
    topic_filter = shared.filter if shared else sub.filter
    existed = sub.filter in session.subscriptions
    session.subscriptions[sub.filter] = entry
    broker.router.subscribe(topic_filter, entry, shared.group if shared else None)
    send = shared is None and (sub.retain_handling == 0 or
                               (sub.retain_handling == 1 and not existed))
    return granted, send


def _send_retained(conn: Connection, session: Session, sub: Subscription, granted: int,
                   ident: int) -> None:
    broker = conn.broker
    for message in broker.retained.matching(sub.filter, broker.clock()):
        out = Outgoing(message, min(granted, message.qos), True, (ident,) if ident else ())
        session.deliver(out)


def handle_unsubscribe(conn: Connection, p: Unsubscribe) -> None:
    session = conn.session
    assert session is not None
    codes = [unsubscribe_one(conn, session, f) for f in p.filters]
    conn.send_packet(Unsuback(p.packet_id, codes))
    conn.broker.session_changed(session, list(p.filters))


def unsubscribe_one(conn: Connection, session: Session, topic_filter: str) -> int:
    if conn.broker.forget_subscription(session, topic_filter):
        return Reason.SUCCESS
    return Reason.NO_SUBSCRIPTION_EXISTED
