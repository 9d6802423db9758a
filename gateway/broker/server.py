"""The broker hub: sessions, the live connection of each client id, routing of every message.

`Broker.publish` is the one path every message takes — from clients, wills, `$SYS` and the
bridge: queues first (a full `block` queue holds the producer back before anyone receives the
message), then retained storage, then pub/sub delivery.

The broker does not know the bridges: what runs beside it is handed in by the composition root
(`gateway.serve`) as `services`, each started, ticked, reloaded and stopped with the broker and
reported under `$SYS` (`Service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.broker import dispatch, listeners, sysstats
from gateway.broker.access import Access
from gateway.broker.backlog import BacklogContext
from gateway.broker.connection import Connection
from gateway.broker.dispatch import Handler
from gateway.broker.handle_connect import MAX_EXPIRY, Connecting
from gateway.broker.handle_publish import Publishing
from gateway.broker.handle_subscribe import Subscribing
from gateway.broker.limits import Limits
from gateway.broker.login import Logins
from gateway.broker.retained import RetainedStore
from gateway.broker.router import Router
from gateway.broker.service import Service
from gateway.broker.session import Outgoing, Session, SubEntry
from gateway.broker.takeovers import WINDOW as TAKEOVER_WINDOW
from gateway.broker.takeovers import Takeovers
from gateway.broker.wills import WillScheduler
from gateway.config import Config, queue_specs
from gateway.messages import Message, PublishResult, received
from gateway.mqtt.packets import Will
from gateway.mqtt.reasons import Reason
from gateway.mqtt.topics import parse_shared
from gateway.queues.engine import QueueEngine
from gateway.store.committer import Committer
from gateway.store.db import DB_NAME, loading, migrate
from gateway.store.disk import DiskBudget
from gateway.store.queues import QueueStore
from gateway.store.sessions import RetainedTable, SessionStore, decode_owner

log = logging.getLogger("gateway.broker")


@dataclass(slots=True)
class Stats:
    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    protocol_errors: int = 0
    refused: int = 0
    connections_total: int = 0
    clients_maximum: int = 0
    dropped: int = 0
    publish_refused: int = 0
    deliveries_denied: int = 0
    wills_waiting: int = 0
    expired: int = 0


class Broker:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop_policy().get_event_loop()
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.live: dict[str, Connection] = {}
        self.router = Router()
        self.wills = WillScheduler()
        self.access = Access(config.auth, config.mqtt)
        self.logins = Logins(self.access)
        self.stats = Stats()
        self.takeovers = Takeovers()
        self.limits = Limits()
        self.started_at = time.monotonic()
        self.servers: list[asyncio.Server] = []
        self.retained = RetainedStore()
        self._tick_handle: asyncio.TimerHandle | None = None
        self.overloaded = False
        self.paused: list[Connection] = []
        self.services: list[Service] = []
        self._next_sys = 0.0
        self.committer: Committer
        self.engine: QueueEngine
        self.session_store: SessionStore
        self.backlogs: BacklogContext
        self.disk: DiskBudget
        self.handlers: dict[type, Handler]  # by packet type, once the store is open

    # ------------------------------------------------------------------ life cycle

    def open_storage(self) -> None:
        """Open the store and load sessions, retained messages and queues (before listening)."""
        self.loop = asyncio.get_running_loop()
        path = Path(self.config.data_dir) / DB_NAME
        self._running_marker = path.with_suffix(".running")
        unclean = self._running_marker.exists()
        self.committer = Committer(path, self.config.storage.synchronous, self.loop)
        migrate(self.committer.connection, path, check=unclean)
        storage = self.config.storage
        self.disk = DiskBudget(self.committer, storage.max_disk_bytes, storage.min_free_bytes)
        with loading(path):  # a damaged page read here: one clear error, not a traceback
            self._running_marker.touch()
            self.session_store = SessionStore(self.committer)
            mqtt = self.config.mqtt
            self.backlogs = BacklogContext(self.session_store, self.clock,
                                           mqtt.max_queued_messages, mqtt.max_queued_bytes,
                                           mqtt.queued_overflow)
            table = RetainedTable(self.committer)
            self.retained = RetainedStore(table.persist)
            for message in table.load_all():
                self.retained.set(message, persist=False)
            self.engine = QueueEngine(QueueStore(self.committer), queue_specs(self.config),
                                      self.config.storage, self.clock)
            self.engine.load()
            self._restore_sessions()
            self.disk.start()
        self.handlers = dispatch.handlers(
            Connecting(self, access=self.access, logins=self.logins, stats=self.stats,
                       limits=self.limits),
            Publishing(self, access=self.access, stats=self.stats, disk=self.disk,
                       committer=self.committer, session_store=self.session_store,
                       engine=self.engine, clock=self.clock),
            Subscribing(self, limits=self.limits, router=self.router, engine=self.engine,
                        retained=self.retained, clock=self.clock))

    async def start(self) -> None:
        """Open the store, then listen (`open_storage` and `listen` can be called apart)."""
        self.open_storage()
        await self.listen()

    async def listen(self) -> None:
        for listener in self.config.listeners:
            self.servers.append(await listeners.serve(self, listener))
        self._tick_handle = self.loop.call_later(1.0, self._tick)
        for service in self.services:
            service.start(self.config)

    async def stop(self) -> None:
        """Stop accepting, say goodbye to clients, flush commits, close the store."""
        for server in self.servers:
            server.close()
        for service in self.services:
            await service.stop()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        for conn in list(self.connections):
            conn.disconnect(Reason.SERVER_SHUTTING_DOWN, "the gateway is shutting down")
        await asyncio.sleep(0)
        for session in self.sessions.values():
            session.backlog.flush_done(session.client_id)
            if session.persistent:
                self._save_session(session, self.clock())
        self.engine.flush()
        self.committer.close()
        if not self.committer.damaged:  # else the next start checks the file (quick_check)
            with contextlib.suppress(OSError):  # a store gone read-only: checked next start
                self._running_marker.unlink(missing_ok=True)

    def _restore_sessions(self) -> None:
        """Sessions, their subscriptions and QoS 2 releases; owed messages stay on disk."""
        now = self.clock()
        self.session_store.delete_orphans()
        mqtt = self.config.mqtt  # sessions stored under a larger cap (or none) get today's
        cap = max(mqtt.max_session_expiry, mqtt.persistent_session_expiry or MAX_EXPIRY)
        for stored in self.session_store.load_all():
            since = stored.disconnected_at or now
            expiry = min(stored.expiry, cap)
            if expiry != MAX_EXPIRY and now - since >= expiry:
                self.session_store.delete(stored.client_id)
                continue
            session = Session.new(stored.client_id, self.backlogs, expiry)
            session.disconnected_at = since
            session.backlog.disk_count, session.backlog.disk_bytes = stored.backlog
            if stored.owner is None:
                session.claimed = False
            else:
                session.username = decode_owner(stored.owner)
            self.sessions[session.client_id] = session
            for sub, ident in stored.subscriptions:
                entry = SubEntry(session, sub, ident)
                session.subscriptions[sub.filter] = entry
                self._route_entry(sub.filter, entry)
            session.mqtt.restore_incoming(stored.incoming)
            for row_id, message, qos, packet_id in stored.released:
                session.mqtt.restore(packet_id, Outgoing(message, qos, store_id=row_id),
                                     released=True)

    def _route_entry(self, topic_filter: str, entry: SubEntry) -> None:
        if self.engine.is_queue_filter(topic_filter):
            return
        shared = parse_shared(topic_filter)
        self.router.subscribe(shared.filter if shared else topic_filter, entry,
                              shared.group if shared else None)

    # ------------------------------------------------------------------ connections

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.stats.connections_total += 1

    def may_take(self, client_id: str, username: str | None) -> bool:
        """Whether a client of `username` may use `client_id`: a session, live or stored,
        belongs to the user who created it (another user would read its messages)."""
        live = self.live.get(client_id)
        if live is not None and live.username != username:
            return False
        session = self.sessions.get(client_id)
        return (session is None or not session.claimed or session.username == username
                or (session.link is None and self._expired(session, self.clock())))

    def attach(self, conn: Connection, client_id: str, clean_start: bool, expiry: int,
               will: Will | None, username: str | None) -> bool:
        """Bind `conn` to the session of `client_id`; True when an old session continues."""
        old = self.live.get(client_id)
        if old is not None and old is not conn:
            log.info("session %s taken over by %s", client_id, conn.peer,
                     extra={"CLIENT_ID": client_id, "REASON": "session taken over"})
            count = self.takeovers.taken_over(client_id, self.loop.time())
            if count:
                log.warning("client id %s taken over %d times in %d s (now from %s): two "
                            "devices may be using the same id", client_id, count,
                            int(TAKEOVER_WINDOW), conn.peer,
                            extra={"CLIENT_ID": client_id, "REASON": "duplicate client id"})
            self._detach(old)
            old.disconnect(Reason.SESSION_TAKEN_OVER, "another client connected with this id")
        session = self.sessions.get(client_id)
        if session is not None and session.link is None and self._expired(session, self.clock()):
            self._discard(session)  # expired offline since the last tick: it must not resume
            session = None
        if session is not None and clean_start:
            self._discard(session)  # the session ends: a will it still holds goes now
            session = None
        self.wills.cancel(client_id)  # the session continues: its delayed will is cancelled
        present = session is not None
        if session is None:
            session = Session.new(client_id, self.backlogs)
            self.sessions[client_id] = session
        was_persistent = session.persistent
        session.expiry = expiry
        session.will = will
        session.username = username
        session.claimed = True
        conn.session = session
        self.live[client_id] = conn
        self.stats.clients_maximum = max(self.stats.clients_maximum, len(self.live))
        if session.persistent:
            self._save_session(session, 0.0)
            if not was_persistent:  # what it subscribed to so far becomes durable too
                self.session_store.replace_subscriptions(session.client_id, [
                    (e.options, e.identifier) for e in session.subscriptions.values()])
        elif was_persistent:
            self.session_store.forget(client_id)
        return present

    def session_started(self, session: Session) -> None:
        """After CONNACK: resend what was in flight, re-join queues, drain the backlog."""
        link = self.live[session.client_id]
        refused = [f for f in session.subscriptions
                   if self.subscription_reason(session.username, session.client_id, f)]
        for topic_filter in refused:
            log.warning("session %s resumed: subscription %s no longer allowed, removed",
                        session.client_id, topic_filter,
                        extra={"CLIENT_ID": session.client_id, "REASON": "not authorized"})
            self.forget_subscription(session, topic_filter)
        if refused:
            self.session_changed(session, refused)
        for topic_filter, entry in session.subscriptions.items():
            if self.engine.is_queue_filter(topic_filter):
                self.engine.subscribe(topic_filter, session, entry.options.qos)
        session.resume(link)
        self.engine.consumer_ready(session)

    def subscription_reason(self, username: str | None, client_id: str,
                            topic_filter: str) -> int:
        """0, or the SUBACK reason refusing this client `topic_filter` (any form)."""
        if self.engine.is_queue_filter(topic_filter):
            binding = self.engine.binding(topic_filter)
            if binding is None:
                return Reason.TOPIC_FILTER_INVALID
            return self.access.subscription_reason(username, client_id, topic_filter, binding)
        try:
            shared = parse_shared(topic_filter)
        except ValueError:
            return Reason.TOPIC_FILTER_INVALID
        return self.access.subscription_reason(username, client_id,
                                               shared.filter if shared else topic_filter)

    def forget_subscription(self, session: Session, topic_filter: str) -> bool:
        """Remove one subscription of `session` from the router or its queue; False when it
        had none on `topic_filter`."""
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        if self.engine.is_queue_filter(topic_filter):
            self.engine.unsubscribe(topic_filter, session)
            return True
        shared = parse_shared(topic_filter)
        self.router.unsubscribe(shared.filter if shared else topic_filter, session.client_id,
                                shared.group if shared else None)
        return True

    def session_changed(self, session: Session, filters: list[str]) -> None:
        """SUBSCRIBE or UNSUBSCRIBE of `filters`: store just those (one row each)."""
        if not session.persistent:
            return
        subscribed = [(e.options, e.identifier) for f in filters
                      if (e := session.subscriptions.get(f)) is not None]
        if subscribed:
            self.session_store.subscribe(session.client_id, subscribed)
        gone = [f for f in filters if f not in session.subscriptions]
        if gone:
            self.session_store.unsubscribe(session.client_id, gone)

    def _save_session(self, session: Session, disconnected_at: float) -> None:
        self.session_store.save(session.client_id, session.expiry, disconnected_at,
                                session.username)

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        session = conn.session
        if session is None or self.live.get(conn.client_id) is not conn:
            return
        self._detach(conn)

    def _detach(self, conn: Connection) -> None:
        """The client is gone (closed, failed or taken over): wills, queues, session expiry."""
        session = conn.session
        assert session is not None
        del self.live[conn.client_id]
        self.engine.detach(session)
        for packet_id in [pid for pid, out in session.mqtt.inflight.items() if out.token]:
            session.mqtt.forget(packet_id)
        session.detach()
        now = self.clock()
        session.disconnected_at = now
        will = session.will
        if will is not None and not conn.clean_disconnect:
            delay = will.properties.get("will_delay_interval", 0)
            if conn.will_now or delay == 0 or session.expiry == 0:
                self.publish_will(session.client_id, will, session.username)
            else:
                self.wills.schedule(session.client_id, will, now + min(delay, session.expiry),
                                    session.username)
        session.will = None
        if session.expiry == 0:
            self._discard(session)
        else:
            self._save_session(session, now)

    @staticmethod
    def _expired(session: Session, now: float) -> bool:
        """Whether an offline session has outlived its expiry interval."""
        return session.expiry != MAX_EXPIRY and now - session.disconnected_at >= session.expiry

    def _discard(self, session: Session) -> None:
        """End a session: its subscriptions, owed messages and any pending will."""
        pending = self.wills.take(session.client_id)
        if pending is not None:
            self.publish_will(pending.client_id, pending.will, pending.username)
        for topic_filter in list(session.subscriptions):
            self.forget_subscription(session, topic_filter)
        self.engine.detach(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        session.backlog.clear()
        self.session_store.delete(session.client_id)

    def publish_will(self, client_id: str, will: Will, username: str | None) -> None:
        """Publish a will, authorized again (the rules may have changed since CONNECT). A will
        held back by a full `block` queue waits for room, as a producer would."""
        if self.access.publish_reason(username, client_id, will.topic):
            log.warning("will of %s on %s no longer allowed: not published", client_id,
                        will.topic, extra={"CLIENT_ID": client_id, "REASON": "not authorized"})
            return
        message = received(will.topic, will.payload, will.qos, will.retain, will.properties,
                           client_id, self.clock())
        self._publish_will(message)

    def _publish_will(self, message: Message) -> None:
        result = self.publish(message)
        if result.blocked is not None:
            self.stats.wills_waiting += 1
            self.engine.wait_for_room(result.blocked, lambda: self._will_room(message))

    def _will_room(self, message: Message) -> None:
        self.stats.wills_waiting -= 1
        self._publish_will(message)

    # ------------------------------------------------------------------ messages

    def publish(self, message: Message) -> PublishResult:
        """Enqueue, retain and deliver one accepted message."""
        outcome = self.engine.publish(message)
        if outcome.blocked is not None:
            return PublishResult(0, False, 0, outcome.blocked)
        if outcome.reason >= 0x80:  # a queue refused it (reject_new): it goes nowhere
            return PublishResult(0, False, outcome.reason)
        durable = outcome.matched > 0
        if message.retain:
            system = message.topic.startswith("$SYS/")
            self.retained.set(message, persist=not system)
            durable = durable or not system
        matched = outcome.matched
        for entry, qos, ids in self.router.route(message.topic):
            session = entry.session
            options = entry.options
            if options.no_local and session.client_id == message.client_id:
                continue
            q = qos if qos < message.qos else message.qos
            out = Outgoing(message, q, message.retain and options.retain_as_published, ids)
            if q and session.expiry:
                out.store_id = self.session_store.add_message(session.client_id, message, q,
                                                              out.retain, ids)
                durable = True
            if not session.deliver(out):
                self.stats.dropped += 1
                if out.store_id:
                    self.session_store.remove_message(out.store_id)
            matched += 1
        return PublishResult(matched, durable, outcome.reason)

    def outgoing_done(self, conn: Connection, out: Outgoing, packet_id: int,
                      reason: int = 0) -> None:
        """An outbound message is finished: acknowledged, expired, or too large to send.
        `packet_id` is the id the session still holds for it, 0 when the acknowledgement
        already freed it (`MqttSession.puback`, `pubrec`, `pubcomp`)."""
        session = conn.session
        if session is None:
            return
        if packet_id:
            session.mqtt.forget(packet_id)
        if out.store_id:
            session.backlog.done(session.client_id, out)
        session.drain()
        if not out.token:
            self.engine.consumer_ready(session)
        elif reason >= 0x80:
            self.engine.reject(session, out.token, reason)
        else:
            self.engine.ack(session, out.token)  # which dispatches the next message

    def consumer_ready(self, session: Session) -> None:
        self.engine.consumer_ready(session)

    # ------------------------------------------------------------------ housekeeping

    def _tick(self) -> None:
        """Once a second: keepalive, CONNECT timeout, wills, session expiry, queues, $SYS."""
        self._tick_handle = self.loop.call_later(1.0, self._tick)
        loop_now = self.loop.time()
        self.takeovers.forget_before(loop_now - TAKEOVER_WINDOW)
        now = self.clock()
        connect_timeout = self.config.mqtt.connect_timeout
        for conn in list(self.connections):
            if conn.session is None:
                if loop_now - conn.connected_at > connect_timeout:
                    conn.close()
            elif (not conn.blocked  # a held producer is not idle
                  and conn.session.mqtt.silent(loop_now - conn.last_seen)):
                conn.disconnect(Reason.KEEP_ALIVE_TIMEOUT, "keep alive timeout")
        for pending in self.wills.due(now):
            self.publish_will(pending.client_id, pending.will, pending.username)
        for session in [s for s in self.sessions.values() if s.link is None]:
            if self._expired(session, now):
                self.stats.expired += 1
                self._discard(session)
        for conn in self.live.values():
            if conn.session is not None:
                conn.session.backlog.flush_done(conn.client_id)
                if conn.session.backlog.unstick(now):
                    conn.session.drain()
        self.engine.tick(now)
        self.disk.check()
        for service in self.services:
            service.tick(loop_now)
        self._check_memory()
        interval = self.config.mqtt.sys_interval
        if interval and loop_now >= self._next_sys:
            self._next_sys = loop_now + interval
            sysstats.publish(self)

    def memory_in_use(self) -> int:
        """Bytes held in queue windows, session read-aheads and unsent client output."""
        buffered = sum(c.transport.get_write_buffer_size() for c in self.connections
                       if c.transport is not None)
        return self.engine.memory_bytes + self.backlogs.memory + buffered

    def _check_memory(self) -> None:
        """Above the global budget, producers are paused (in `handle_publish`); below, resumed."""
        used = self.memory_in_use()
        budget = self.config.storage.memory_budget
        if used > budget and not self.overloaded:
            log.warning("memory budget reached (%d of %d bytes): pausing producers", used, budget)
        self.overloaded = used > budget
        if not self.overloaded and self.paused:
            paused, self.paused = self.paused, []
            for conn in paused:
                conn.unblock()

    def pause_producer(self, conn: Connection) -> None:
        conn.block()
        self.paused.append(conn)

    def reload(self, config: Config) -> None:
        """Apply a re-read config: auth files and queue definitions; listeners stay as bound."""
        self.config = config
        self.access.reload(config.auth, config.mqtt)
        for service in self.services:
            service.stop_changed(config)
        for note in self.engine.reload(queue_specs(config)):
            log.info("reload: %s", note)
        for service in self.services:
            service.start(config)
