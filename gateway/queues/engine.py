"""The queue engine: what the broker calls for every queue-related event.

The broker hands in accepted PUBLISHes (`publish`), `$q/`/`$queue/` subscriptions, consumer
acknowledgements, rejections and disconnects, and a clock tick; the engine stores, dispatches
through `Consumer.queue_deliver`, and answers with plain values (`PublishOutcome`, reason codes).
It never touches a socket or the event loop: durability is the store's business (the broker
sends the producer's PUBACK from `committer.on_commit` after `publish`), and anything that must
happen later comes back through `tick` or a store callback.

Callbacks to blocked producers (`wait_for_room`) run at the end of the engine call that made
room, never in the middle of one.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from gateway.config import QueueSpec, StorageSettings
from gateway.messages import Message
from gateway.queuenames import dead_letter_name, is_queue_filter
from gateway.queues.deadletter import SOURCE, mark, mark_dead, unmark
from gateway.queues.limits import CreationLimits
from gateway.queues.model import (
    NO_MATCH,
    PACKET_TOO_LARGE,
    QUOTA_EXCEEDED,
    REJECTED,
    TOPIC_FILTER_INVALID,
    UNSPECIFIED_ERROR,
    Consumer,
    Entry,
    LimitReached,
    Member,
    PublishOutcome,
    QueueError,
    QueueStats,
)
from gateway.queues.queue import ADMIT, BLOCK, DROP_NEW, REJECT, Queue
from gateway.queues.registry import Registry
from gateway.queues.stats import details, preview, snapshot, update_rates
from gateway.queues.window import Context, Owner
from gateway.store.rows import pack_props

if TYPE_CHECKING:
    from gateway.store.queues import QueueStore

log = logging.getLogger(__name__)
MATCHED = tuple(PublishOutcome(n) for n in range(8))


class QueueEngine:
    """Durable queues over MQTT (SPEC §2). Call from the event loop only."""

    def __init__(self, store: QueueStore, specs: Sequence[QueueSpec],
                 settings: StorageSettings, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._specs = list(specs)
        # Windows may use half the global budget; the rest is for connection buffers.
        self._ctx = Context(store, clock, settings.queue_window, settings.memory_budget // 2,
                            self._dead_letter)
        self._clock = clock
        self.limits = CreationLimits(settings, clock)
        self._reg = Registry(self._ctx, self.limits)
        self._consumers: dict[int, list[Member]] = {}
        self._last_tick: float | None = None

    # -- start-up --------------------------------------------------------------------------

    def load(self) -> None:
        """Read definitions, depths, last-value keys and first windows (synchronously)."""
        self._reg.load(self._specs)

    @property
    def memory_bytes(self) -> int:
        """RAM held by queued messages (windows and in flight), for the global budget."""
        return self._ctx.memory

    @property
    def backlog(self) -> int:
        """Messages stored in all queues."""
        return sum(q.depth for q in self._reg.queues.values())

    # -- producers -------------------------------------------------------------------------

    def publish(self, message: Message) -> PublishOutcome:
        """Enqueue an accepted PUBLISH into every matching queue, all or nothing.

        `reason` is 0x97 when a full reject_new queue refused it;
        `blocked` names a full `block` queue: nothing was stored anywhere, the broker pauses
        the producer, calls `wait_for_room` and publishes the same message again later.
        """
        try:
            targets = self._reg.targets(message.topic)
        except LimitReached:
            return REJECTED
        if not targets:
            return NO_MATCH
        now = self._clock()
        if message.expires_at is not None and message.expires_at <= now:
            return NO_MATCH
        size = message.size
        plans: list[tuple[Queue, str | None]] = []
        blocked: Queue | None = None
        dropped: list[Queue] = []
        for q in targets:
            verdict, key = q.admit(message, size, now)
            if verdict == ADMIT:
                plans.append((q, key))
            elif verdict == REJECT:
                q.c.rejected += 1
                return REJECTED
            elif verdict == BLOCK:
                blocked = blocked or q
            elif verdict == DROP_NEW:
                dropped.append(q)
        if blocked is not None:
            blocked.c.blocked += 1
            return PublishOutcome(0, 0, blocked.name)
        props = pack_props(message.properties)
        for q, key in plans:
            q.enqueue(message, size, props, key, now)
        for q in dropped:
            q.c.dropped += 1
        if self._ctx.wakes:
            self._run_wakes()
        # A failing store is not refused here: the producer's acknowledgement waits for the
        # commit of this very message (`on_commit(ok)`), which says whether it was stored.
        # A drop_oldest queue that had to drop the new message itself (only messages in flight
        # fill it) still counts as matched: that is its policy working, not "no subscribers".
        matched = len(plans) + len(dropped)
        return MATCHED[matched] if matched < len(MATCHED) else PublishOutcome(matched)

    def wait_for_room(self, queue: str, callback: Callable[[], None]) -> None:
        """Call `callback` once `queue` has room again (or is gone)."""
        q = self._reg.queues.get(queue)
        if q is None or q.has_room() or q.spec.overflow != "block":
            callback()
            return
        q.waiters.append(callback)

    # -- consumers -------------------------------------------------------------------------

    def is_queue_filter(self, topic_filter: str) -> bool:
        return is_queue_filter(topic_filter)

    def binding(self, topic_filter: str) -> tuple[str, bool] | None:
        """(filter consumed, whether subscribing creates a queue) for a `$q/`/`$queue/`
        subscription, or None when it names no queue; nothing is created."""
        return self._reg.binding(topic_filter)

    def subscribe(self, topic_filter: str, consumer: Consumer, qos: int) -> int:
        """Join the queue `topic_filter` names; 0, or 0x8F for an unknown queue or bad form.
        Deliveries may start before this returns (MQTT allows PUBLISH before SUBACK)."""
        try:
            q = self._reg.resolve(topic_filter)
        except LimitReached:
            return QUOTA_EXCEEDED
        if q is None:
            return TOPIC_FILTER_INVALID
        member = q.join(consumer, qos)
        member.filters.add(topic_filter)
        members = self._consumers.setdefault(id(consumer), [])
        if member not in members:
            members.append(member)
        self._run_wakes()
        return 0

    def unsubscribe(self, topic_filter: str, consumer: Consumer) -> bool:
        """Stop dispatching to `consumer` and return its in-flight messages to the queue,
        unless another of its filters still names the same queue."""
        q = self._reg.resolve(topic_filter, create=False)
        member = q.member_of(consumer) if q is not None else None
        if q is None or member is None or not member.active:
            return False
        member.filters.discard(topic_filter)
        if member.filters:
            return True
        q.leave(member)
        self._prune(consumer)
        self._run_wakes()
        return True

    def detach(self, consumer: Consumer) -> None:
        """Disconnected: every message in flight to it goes back to the head of its queue."""
        for member in self._consumers.pop(id(consumer), []):
            member.queue.detach(member)
        self._run_wakes()

    def ack(self, consumer: Consumer, token: int) -> None:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2) of a queue delivery: the message is consumed."""
        member = self._holder(consumer, token)
        if member is not None:
            member.queue.ack(member, token)
            self._run_wakes()

    def reject(self, consumer: Consumer, token: int, reason: int = UNSPECIFIED_ERROR) -> None:
        """5.0 PUBACK with a reason >= 0x80: redeliver to another consumer if there is one.
        0x95 (Packet too large) is the broker's own: the message exceeds the consumer's
        Maximum Packet Size, and was never sent to it."""
        member = self._holder(consumer, token)
        if member is not None:
            if reason == PACKET_TOO_LARGE:
                member.queue.too_large(member, token)
            else:
                member.queue.reject(member, token)
            self._run_wakes()

    def consumer_ready(self, consumer: Consumer) -> None:
        """Its capacity grew (acknowledgements of other messages, output buffer drained)."""
        for member in self._consumers.get(id(consumer), ()):
            member.queue.dispatch()
        self._run_wakes()

    def _holder(self, consumer: Consumer, token: int) -> Member | None:
        for member in self._consumers.get(id(consumer), ()):
            if token in member.inflight:
                return member
        return None

    def _prune(self, consumer: Consumer) -> None:
        """Forget memberships that have left their queue."""
        members = self._consumers.get(id(consumer))
        if members is not None:
            members[:] = [m for m in members if m in m.queue.members]
            if not members:
                del self._consumers[id(consumer)]

    # -- time ------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """About once a second: expiry, acknowledgement timeouts, rates, stalled dispatch."""
        dt = now - self._last_tick if self._last_tick is not None else 0.0
        self._last_tick = now
        idle = self._reg.idle_instances(now)
        for q in idle:
            self._drop(q)
        if idle:
            self.limits.expired += len(idle)
            log.info("removed %d template instances left empty without consumers for %d s",
                     len(idle), self.limits.instance_expiry)
        for q in list(self._reg.queues.values()):
            q.expire(now)
            q.release_due(now)
            q.time_out(now)
            q.disk.unstick(now)
            q.wake_if_room()
            q.dispatch()
            update_rates(q, dt)
        self._run_wakes()

    def flush(self) -> None:
        """Hand buffered deletes and delivery counts to the committer (call before closing
        the committer on shutdown)."""
        self._store.flush()

    # -- management ------------------------------------------------------------------------

    def create(self, spec: QueueSpec) -> None:
        """A run-time queue, persisted; QueueError if the name is taken or the spec is bad."""
        self._reg.create(spec)

    def delete(self, name: str) -> None:
        """Remove a run-time queue (a template with its instances) and all its messages."""
        q = self._reg.get(name)
        if q.origin == "config":
            raise QueueError(f"queue {name!r} is defined in the config file; remove it there "
                             "and reload")
        doomed = [q]
        if q.kind == "template":
            doomed += [i for i in self._reg.queues.values()
                       if i.kind == "instance" and i.parent == q.name]
        for victim in doomed:
            self._drop(victim)
        self._run_wakes()

    def _drop(self, q: Queue) -> None:
        for member in q.close():
            members = self._consumers.get(id(member.consumer))
            if members is not None and member in members:
                members.remove(member)
                if not members:
                    del self._consumers[id(member.consumer)]
        self._ctx.store.drop_queue(q.name)
        self._reg.remove(q)

    def purge(self, name: str) -> int:
        """Delete every ready message of `name` (in-flight ones complete); how many."""
        q = self._reg.get(name)
        if q.kind == "template":
            raise QueueError(f"{name!r} is a template; purge one of its instances")
        count = q.purge()
        self._run_wakes()
        return count

    def peek(self, name: str, limit: int, whole: bool = False,
             offset: int = 0) -> list[dict[str, Any]]:
        """`limit` ready messages of `name`, oldest first after skipping `offset`, as `show`
        samples them (`whole`: with the payload in base64), consuming nothing; within the
        queue's RAM window (`storage.queue_window`)."""
        q = self._reg.get(name)
        if q.kind == "template":
            raise QueueError(f"{name!r} is a template; peek one of its instances")
        return [preview(e.message, e.deliveries, whole)
                for e in itertools.islice(q.ready, offset, offset + limit)
                if e.message is not None]

    def spec(self, name: str) -> QueueSpec:
        """The settings queue `name` runs with (its limits, for the fill of `edgeq top`)."""
        return self._reg.get(name).spec

    def replay(self, name: str, offset: int | None = None) -> int:
        """Move the dead letters of `name` (a queue, or a dead-letter queue) that are in RAM
        back into the queues they died in, unmarked and as new (`offset`: only the one at
        that place, 0 the oldest, as `peek` lists them); how many moved. A source that is
        full, gone for good or refuses keeps its dead letters where they are."""
        dlq = self._dead_letters_of(self._reg.get(name))
        if dlq is None:
            return 0
        now = self._clock()
        moved = 0
        entries = list(dlq.ready)
        for entry in entries if offset is None else entries[offset:offset + 1]:
            assert entry.message is not None
            target = self._replay_target(dlq, entry.message)
            message = unmark(entry.message, now)
            verdict, key = target.admit(message, entry.size, now) if target else (BLOCK, None)
            if target is None or verdict != ADMIT:
                continue
            target.enqueue(message, entry.size, pack_props(message.properties), key, now)
            dlq.remove_ready(entry)
            moved += 1
        self._run_wakes()
        return moved

    def _dead_letters_of(self, q: Queue) -> Queue | None:
        if q.kind == "dead_letter":
            return q
        parent = q
        if q.kind == "instance" and q.parent in self._reg.queues:
            parent = self._reg.queues[q.parent]
        return self._reg.queues.get(dead_letter_name(parent.name))

    def _replay_target(self, dlq: Queue, message: Message) -> Queue | None:
        """The queue a dead letter died in (an expired instance comes back)."""
        q = self._reg.queues.get(mark(message, SOURCE) or dlq.parent)
        if q is None or q.kind == "template":
            template = q or self._reg.queues.get(dlq.parent)
            if template is None or template.kind != "template":
                return None
            try:
                q = self._reg.instance(template, message.topic)
            except LimitReached:
                return None
        return q if q is not None and q.kind != "dead_letter" else None

    def stats(self) -> list[QueueStats]:
        now = self._clock()
        return [snapshot(q, now) for q in self._reg.queues.values()]

    def show(self, name: str) -> dict[str, Any]:
        """Stats, settings, consumers (client id, in flight, acked) and dead-letter sample."""
        q = self._reg.get(name)
        dlq = self._reg.queues.get(dead_letter_name(q.name))
        return details(q, self._clock(), dlq)

    def reload(self, specs: Sequence[QueueSpec]) -> list[str]:
        """SIGHUP: apply changed config definitions; consumers stay. One note per change."""
        self._specs = list(specs)
        notes = self._reg.reload(self._specs)
        for q in list(self._reg.queues.values()):
            q.wake_if_room()
            if q.waiters and q.spec.overflow != "block":
                self._ctx.wakes.extend(q.waiters)
                q.waiters = []
            q.dispatch()
        self._run_wakes()
        return notes

    # -- internals -------------------------------------------------------------------------

    def _dead_letter(self, owner: Owner, entry: Entry, reason: str) -> None:
        """Move a message to the dead-letter queue, in one transaction, marked with why and
        where from and after how many deliveries (`x-death-*` user properties)."""
        # Every owner is a Queue: window.py names it by a protocol so as not to import queue.py.
        queue = cast(Queue, owner)
        assert entry.message is not None
        message = mark_dead(entry.message, reason, queue.name, entry.deliveries)
        dlq = self._reg.dead_letter_queue(queue)
        dlq.enqueue(message, entry.size, pack_props(message.properties), None,
                    self._clock())
        self._ctx.store.delete_now(entry.id)

    def _run_wakes(self) -> None:
        while self._ctx.wakes:
            wakes, self._ctx.wakes = self._ctx.wakes, []
            for callback in wakes:
                callback()
