"""SUBSCRIBE and UNSUBSCRIBE: filter checks, shared groups, queue consumption, retained delivery.

Filters starting with `$q/` or `$queue/` are consumer registrations with the queue engine, not
router entries. Rejections of one filter are SUBACK reason codes (return values), never
exceptions. `Subscribing` holds what it uses (limits, router, queue engine, retained
messages), handed in by the broker once its store is open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway.broker.session import Outgoing, SubEntry
from gateway.mqtt.packets import MQTT_5, Suback, Subscribe, Subscription, Unsuback, Unsubscribe
from gateway.mqtt.reasons import Reason, protocol_error, suback_code_v311
from gateway.mqtt.topics import parse_shared, topic_filter_error

if TYPE_CHECKING:
    from gateway.broker.connection import Connection
    from gateway.broker.limits import Limits
    from gateway.broker.retained import RetainedStore
    from gateway.broker.router import Router
    from gateway.broker.session import Session
    from gateway.config import Config
    from gateway.queues.engine import QueueEngine


class Core(Protocol):
    """What SUBSCRIBE and UNSUBSCRIBE need of the broker itself."""

    @property
    def config(self) -> Config:
        """The running config (replaced on reload)."""

    def subscription_reason(self, username: str | None, client_id: str,
                            topic_filter: str) -> int: ...
    def session_changed(self, session: Session, filters: list[str]) -> None: ...
    def consumer_ready(self, session: Session) -> None: ...
    def forget_subscription(self, session: Session, topic_filter: str) -> bool: ...


class Subscribing:
    """The SUBSCRIBE and UNSUBSCRIBE handlers and what they use."""

    __slots__ = ("_clock", "_core", "_engine", "_limits", "_retained", "_router")

    def __init__(self, core: Core, *, limits: Limits, router: Router, engine: QueueEngine,
                 retained: RetainedStore, clock: Callable[[], float]) -> None:
        self._core = core
        self._limits = limits
        self._router = router
        self._engine = engine
        self._retained = retained
        self._clock = clock

    def subscribe(self, conn: Connection, p: Subscribe) -> None:
        session = conn.session
        assert session is not None
        ident = p.properties.get("subscription_identifier", [0])[0]
        codes: list[int] = []
        retained: list[tuple[Subscription, int]] = []
        session.holding = True  # queue deliveries wait until the SUBACK is out
        try:
            for sub in p.subscriptions:
                code, send_retained = self._subscribe_one(conn, session, sub, ident)
                codes.append(code if conn.version == MQTT_5 else suback_code_v311(code))
                if send_retained:
                    retained.append((sub, code))
        finally:
            session.holding = False
        conn.send_packet(Suback(p.packet_id, codes))
        for sub, granted in retained:
            self._send_retained(session, sub, granted, ident)
        self._core.session_changed(session, [sub.filter for sub in p.subscriptions])
        self._core.consumer_ready(session)

    def _subscribe_one(self, conn: Connection, session: Session, sub: Subscription,
                       ident: int) -> tuple[int, bool]:
        """(SUBACK reason code, whether retained messages follow) for one filter."""
        error = topic_filter_error(sub.filter)
        if error:
            return Reason.TOPIC_FILTER_INVALID, False
        limit = self._core.config.mqtt.max_subscriptions_per_client
        if self._limits.subscription_refused(limit, session, sub.filter):
            return Reason.QUOTA_EXCEEDED, False
        granted = min(sub.qos, session.mqtt.max_qos)
        entry = SubEntry(session, Subscription(sub.filter, granted, sub.no_local,
                                               sub.retain_as_published, sub.retain_handling),
                         ident)
        refused = self._core.subscription_reason(conn.username, conn.client_id, sub.filter)
        if refused:
            return refused, False
        engine = self._engine
        if engine.is_queue_filter(sub.filter):
            code = engine.subscribe(sub.filter, session, granted)
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
        self._router.subscribe(topic_filter, entry, shared.group if shared else None)
        send = shared is None and (sub.retain_handling == 0 or
                                   (sub.retain_handling == 1 and not existed))
        return granted, send

    def _send_retained(self, session: Session, sub: Subscription, granted: int,
                       ident: int) -> None:
        for message in self._retained.matching(sub.filter, self._clock()):
            out = Outgoing(message, min(granted, message.qos), True, (ident,) if ident else ())
            session.deliver(out)

    def unsubscribe(self, conn: Connection, p: Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        codes: list[int] = [Reason.SUCCESS if self._core.forget_subscription(session, f)
                 else Reason.NO_SUBSCRIPTION_EXISTED for f in p.filters]
        conn.send_packet(Unsuback(p.packet_id, codes))
        self._core.session_changed(session, list(p.filters))
