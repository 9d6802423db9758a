"""One durable queue: its limits, last-value index, consumers, in-flight messages and RAM window.

Every message of a queue is a row on disk. In RAM a queue holds only a bounded window of the
oldest ready messages (`ready`, at most `queue_window`), the messages in flight, and for a
last-value queue one small stub per key. Newer messages that do not fit wait on disk
(`DiskSegment`) and are read back in id order, behind the pending writes, when the window runs
low. Ids only grow, so "after the last id loaded" is always the rest of the queue.

A message is ready, then in flight to one member, then either acknowledged (deleted), given
back to the head of the queue (disconnect, timeout, reject) or dead-lettered after
`max_deliveries`. Nothing here waits or does I/O itself: writes go to the store, which groups
them, and a window refill answers later through a callback.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable

from gateway.config import QueueSpec
from gateway.lastvalue import KeyFunc, KeyUnreadable, compile_key
from gateway.messages import Message
from gateway.queues.dispatch import make_strategy, sticky_key
from gateway.queues.model import (
    ENTRY_OVERHEAD,
    NEVER,
    Consumer,
    Counters,
    Delivery,
    Entry,
    Kind,
    Member,
)
from gateway.queues.window import Context, DiskSegment
from gateway.store.queues import StoredRow

log = logging.getLogger(__name__)
INF = float("inf")
ADMIT, DROP_NEW, REJECT, BLOCK = 0, 1, 2, 3
STICKY_LOOKAHEAD = 256


class Queue:
    """A queue's state and the operations on it; the engine routes to it."""

    def __init__(self, spec: QueueSpec, kind: Kind, ctx: Context, origin: str = "config",
                 parent: str = "") -> None:
        self.name = spec.queue_name
        self.kind = kind
        self.origin = origin  # config | runtime | instance | dlq | orphan
        self.parent = parent  # the template of an instance, the queue of a dead-letter queue
        self.bound = kind not in ("instance", "dead_letter") and origin != "orphan"
        self.ctx = ctx
        self.ready: deque[Entry] = deque()
        self.delayed: list[tuple[float, int, Entry]] = []  # rejected, waiting to return: a heap
        self.lv: dict[str, Entry] = {}  # key -> its READY message (in RAM or a disk stub)
        self.members: list[Member] = []
        self.waiters: list[Callable[[], None]] = []
        self.c = Counters()
        self.depth = self.bytes = self.inflight = self.inflight_bytes = 0
        self.disk = DiskSegment(self)
        self.has_deadlines = False
        self.in_rate = self.out_rate = 0.0
        self.seen = (0, 0)  # counters at the last rate update
        self.idle_since = 0.0  # an instance: since when it has been empty without consumers
        self.spec = spec
        self.key_fn: KeyFunc | None = None
        self.apply(spec)

    def apply(self, spec: QueueSpec) -> None:
        """Take new settings (reload); messages, consumers and counters stay."""
        old = getattr(self, "strategy", None)
        if old is None or old.name != spec.dispatch:
            self.strategy = make_strategy(spec.dispatch)
        if spec.last_value_key != self.spec.last_value_key or self.key_fn is None:
            self.key_fn = compile_key(spec.last_value_key) if spec.last_value_key else None
            if spec.last_value_key != self.spec.last_value_key:
                self.lv.clear()  # a new key expression: stored messages become ordinary
        if self.kind in ("standard", "last_value"):
            self.kind = "last_value" if self.key_fn else "standard"
        self.spec = spec
        self.max_messages = spec.max_messages or INF
        self.max_bytes = spec.max_bytes or INF
        # Blocked producers resume below 90 % of each limit, so they make real progress.
        self.low_messages = (spec.max_messages - max(1, spec.max_messages // 10)
                             if spec.max_messages else INF)
        self.low_bytes = spec.max_bytes * 0.9 if spec.max_bytes else INF
        for entry in self.ready:
            entry.deadline = self.deadline(entry.message, entry.created + entry.held)
            self.has_deadlines |= entry.deadline != NEVER

    def deadline(self, message: Message | None, created: float) -> float:
        """When a message stops being deliverable: TTL since enqueue, or its 5.0 expiry."""
        limit = created + self.spec.ttl if self.spec.ttl else NEVER
        if message is not None and message.expires_at is not None:
            return min(limit, message.expires_at)
        return limit

    # -- enqueue ---------------------------------------------------------------------------

    def _key(self, message: Message) -> str | None:
        """The last-value key; a payload beyond the extraction limits is counted and kept as an
        ordinary message, as one without the key is."""
        if self.key_fn is None:
            return None
        try:
            return self.key_fn(message.topic, message.payload, message.properties,
                               message.client_id)
        except KeyUnreadable:
            self.c.key_errors += 1
            return None

    def admit(self, message: Message, size: int, now: float) -> tuple[int, str | None]:
        """(ADMIT | DROP_NEW | REJECT | BLOCK, last-value key) for a message about to enqueue."""
        key = self._key(message)
        if self._fits(size, key):
            return ADMIT, key
        self.expire(now, head_only=True)
        if self._fits(size, key):
            return ADMIT, key
        policy = self.spec.overflow
        if policy == "drop_oldest":
            room = self.inflight + 1 <= self.max_messages
            room = room and self.inflight_bytes + size <= self.max_bytes
            return (ADMIT if room else DROP_NEW), key
        if size > self.max_bytes or policy == "reject_new":
            return REJECT, key
        return BLOCK, key

    def _fits(self, size: int, key: str | None) -> bool:
        count, total = self.depth + 1, self.bytes + size
        if key is not None:
            old = self.lv.get(key)
            if old is not None:
                count, total = count - 1, total - old.size
        return count <= self.max_messages and total <= self.max_bytes

    def enqueue(self, message: Message, size: int, props: bytes | None, key: str | None,
                now: float) -> None:
        """Store `message` (already admitted) and dispatch it if a consumer has room."""
        created = message.created or now
        if key is not None:
            old = self.lv.get(key)
            if old is not None:
                self.remove_ready(old)
                self.c.replaced += 1
        if self.spec.overflow == "drop_oldest":
            self._make_room(size)
        id_ = self.ctx.new_id()
        self.ctx.store.insert(id_, self.name, message, size, props, key, created)
        self.add(id_, message, size, key, 0, created)
        self.c.enqueued += 1
        if self.members:
            self.dispatch()

    def add(self, id_: int, message: Message, size: int, key: str | None, deliveries: int,
            created: float) -> None:
        """Count a stored message in; keep it in RAM when the window has room."""
        deadline = self.deadline(message, created)
        self.has_deadlines |= deadline != NEVER
        self.depth += 1
        self.bytes += size
        if self.disk.spill(size):
            if key is not None:
                self.lv[key] = Entry(id_, None, size, key, deliveries, created, deadline)
            return
        entry = Entry(id_, message, size, key, deliveries, created, deadline)
        self.ready.append(entry)
        self.disk.cursor = id_
        self.ctx.memory += size + ENTRY_OVERHEAD
        if key is not None:
            self.lv[key] = entry

    def _make_room(self, size: int) -> None:
        """drop_oldest: drop ready messages, oldest first, until one of `size` fits."""
        while self.depth + 1 > self.max_messages or self.bytes + size > self.max_bytes:
            if self.ready:
                self.remove_ready(self.ready[0])
            elif not self.disk.drop_oldest():
                return
            self.c.dropped += 1

    def remove_ready(self, entry: Entry) -> None:
        """Delete a ready message (replaced, dropped, expired) in the current transaction."""
        if entry.message is None:
            self.disk.forget(entry)
        else:
            if self.ready and self.ready[0] is entry:
                self.ready.popleft()
            else:
                self.ready.remove(entry)
            self.ctx.memory -= entry.size + ENTRY_OVERHEAD
        self.depth -= 1
        self.bytes -= entry.size
        self.unkey(entry)
        self.ctx.store.delete_now(entry.id)
        self.wake_if_room()

    def unkey(self, entry: Entry) -> None:
        key = entry.lv_key
        if key is not None and self.lv.get(key) is entry:
            del self.lv[key]

    def expire(self, now: float, head_only: bool = False) -> None:
        """Remove ready messages past their TTL or message expiry (never delivered)."""
        if not self.has_deadlines:
            return
        ready = self.ready
        while ready and ready[0].deadline <= now:
            self.expire_entry(ready[0])
        if not head_only:
            for entry in [e for e in ready if e.deadline <= now]:
                self.expire_entry(entry)

    def expire_entry(self, entry: Entry) -> None:
        """A ready message in RAM has expired: deleted, or dead-lettered when the queue says
        `dead_letter_expired`. Counted in `expired` either way."""
        self.remove_ready(entry)
        self.c.expired += 1
        if self.spec.dead_letter_expired and self.kind != "dead_letter":
            self.c.dead_lettered += 1
            self.ctx.dead_letter(self, entry, "expired")

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand ready messages to members with room, in queue order; refill if running low."""
        if self.members and self.ready:
            if self.strategy.per_key:
                self._dispatch_per_key(self.ctx.clock())
            else:
                self._dispatch_in_order(self.ctx.clock())
        self.disk.refill_if_low()

    def _dispatch_in_order(self, now: float) -> None:
        ready, members, pick = self.ready, self.members, self.strategy.pick
        max_inflight = self.spec.max_inflight
        while ready:
            entry = ready[0]
            if entry.deadline <= now:
                self.expire_entry(entry)
                continue
            member = pick(members, max_inflight, entry)
            if member is None:
                return
            ready.popleft()
            self._send(member, entry, now)

    def _dispatch_per_key(self, now: float) -> None:
        """Like in-order, but a key whose member is full does not hold up other keys."""
        ready, pick = self.ready, self.strategy.pick
        max_inflight = self.spec.max_inflight
        held: set[str] = set()
        i = 0
        while i < len(ready) and i < STICKY_LOOKAHEAD:
            entry = ready[i]
            key = sticky_key(entry)
            if entry.deadline <= now:
                self.expire_entry(entry)
                continue
            member = None if key in held else pick(self.members, max_inflight, entry)
            if member is None:
                if not any(m.has_room(max_inflight) for m in self.members):
                    return
                held.add(key)
                i += 1
                continue
            del ready[i]
            self._send(member, entry, now)

    def _send(self, member: Member, entry: Entry, now: float) -> None:
        self.unkey(entry)
        dup = entry.deliveries > 0
        entry.avoid = None
        message = entry.message
        assert message is not None
        if member.qos == 0:  # sending is consuming
            self.count_out(entry)
            self.ctx.store.delete(entry.id)
            member.acked += 1
            self.c.acked += 1
            member.consumer.queue_deliver(Delivery(entry.id, self.name, message, 0, dup,
                                                   tuple(member.filters)))
            self.wake_if_room()
            return
        entry.deliveries += 1
        entry.sent_at = now
        entry.member = member
        member.inflight[entry.id] = entry
        self.inflight += 1
        self.inflight_bytes += entry.size
        self.ctx.store.set_deliveries(entry.id, entry.deliveries)
        member.consumer.queue_deliver(Delivery(entry.id, self.name, message, member.qos, dup,
                                               tuple(member.filters)))

    def count_out(self, entry: Entry) -> None:
        """A RAM message leaves the queue."""
        self.depth -= 1
        self.bytes -= entry.size
        self.ctx.memory -= entry.size + ENTRY_OVERHEAD

    # -- acknowledgement and redelivery ----------------------------------------------------

    def ack(self, member: Member, token: int) -> bool:
        entry = member.inflight.pop(token, None)
        if entry is None:
            return False
        self.landed(entry)
        self.count_out(entry)
        self.ctx.store.delete(entry.id)
        member.acked += 1
        self.c.acked += 1
        self.wake_if_room()
        self.dispatch()
        return True

    def landed(self, entry: Entry) -> None:
        """An in-flight message is no longer in flight."""
        self.inflight -= 1
        self.inflight_bytes -= entry.size
        entry.member = None

    def returned(self, entry: Entry, now: float) -> None:
        """An in-flight message comes back unacknowledged: the time it was out does not count
        against its ttl (message expiry, a wall-clock deadline, still does)."""
        self.landed(entry)
        entry.held += max(0.0, now - entry.sent_at)
        entry.deadline = self.deadline(entry.message, entry.created + entry.held)

    # -- members ---------------------------------------------------------------------------

    def member_of(self, consumer: Consumer) -> Member | None:
        for m in self.members:
            if m.consumer is consumer:
                return m
        return None

    def join(self, consumer: Consumer, qos: int) -> Member:
        member = self.member_of(consumer)
        if member is None:
            member = Member(consumer, self, qos)
            self.members.append(member)
        member.qos, member.active = qos, True
        self.dispatch()
        return member

    def leave(self, member: Member) -> None:
        """UNSUBSCRIBE: no new messages, and those in flight return at once (a late
        acknowledgement is ignored), as on a disconnect."""
        member.active = False
        self.detach(member)

    def drop_member(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
            self.strategy.forget(member)

    def detach(self, member: Member) -> None:
        """The consumer disconnected: its in-flight messages are redelivered to others."""
        self.drop_member(member)
        entries = list(member.inflight.values())
        member.inflight.clear()
        if entries:
            self.give_back(entries)

    # -- returned messages: rejected, too large, timed out, disconnected -------------------
    # What happens to a message that comes back unacknowledged: rejected by its consumer, too
    # large for it, timed out, or returned by a disconnect or UNSUBSCRIBE.
    #
    # It goes back to the head of its queue (oldest first) and is redelivered with DUP set,
    # unless: it has had `max_deliveries` deliveries (then it is dead-lettered with reason
    # `max_deliveries`); a newer value of its last-value key arrived meanwhile (then it is
    # dropped as replaced); or a consumer rejected it and the queue has a `redelivery_delay`
    # (then it waits that long, doubled for each earlier delivery up to `redelivery_delay_max`,
    # before it returns, so that one poison message does not hold up the messages behind it).
    # The time a message spends in flight does not count against its ttl.

    def reject(self, member: Member, token: int) -> None:
        """A consumer rejected a delivery (5.0 reason >= 0x80): prefer another consumer."""
        entry = member.inflight.pop(token, None)
        if entry is None:
            return
        self.c.nacked += 1
        limit = self.spec.max_deliveries
        delay = self.retry_delay(entry)
        if not delay or (limit and entry.deliveries >= limit):
            self.give_back([entry], avoid=member)
            return
        now = self.ctx.clock()
        self.returned(entry, now)
        entry.avoid = member
        heapq.heappush(self.delayed, (now + delay, entry.id, entry))
        self.c.redelivered += 1
        self.dispatch()


    def retry_delay(self, entry: Entry) -> float:
        """`redelivery_delay` doubled for each delivery before the last one, capped."""
        base = self.spec.redelivery_delay
        if not base:
            return 0.0
        return float(min(base * 2 ** min(max(entry.deliveries - 1, 0), 30),
                         max(self.spec.redelivery_delay_max, base)))


    def release_due(self, now: float) -> None:
        """Rejected messages whose delay is over return to the head of the queue, oldest first."""
        due: list[Entry] = []
        while self.delayed and self.delayed[0][0] <= now:
            due.append(heapq.heappop(self.delayed)[2])
        for entry in sorted(due, key=lambda e: e.id, reverse=True):
            self.back_to_head(entry)


    def back_to_head(self, entry: Entry) -> None:
        key = entry.lv_key
        if key is not None:
            if key in self.lv:  # a newer value arrived while this one was out
                self.count_out(entry)
                self.ctx.store.delete(entry.id)
                self.c.replaced += 1
                return
            self.lv[key] = entry
        self.ready.appendleft(entry)


    def too_large(self, member: Member, token: int) -> None:
        """The message exceeds `member`'s Maximum Packet Size and was not sent: not a delivery.
        It goes to another consumer that may take it, else to the dead-letter queue (a
        dead-letter queue keeps it for a consumer that can take it)."""
        entry = member.inflight.pop(token, None)
        if entry is None:
            return
        entry.deliveries -= 1
        self.ctx.store.set_deliveries(entry.id, entry.deliveries)
        self.c.oversize += 1
        log.info("queue %s: message %d (%d bytes) exceeds the Maximum Packet Size of %s",
                 self.name, entry.id, entry.size, member.consumer.client_id)
        entry.too_big = (entry.too_big or set()) | {member}
        if self.kind == "dead_letter" or any(m.active and m.can_take(entry) for m in self.members):
            self.give_back([entry])
            return
        self.landed(entry)
        self.count_out(entry)
        self.c.dead_lettered += 1
        self.ctx.dead_letter(self, entry, "packet_too_large")
        self.wake_if_room()
        self.dispatch()


    def give_back(self, entries: list[Entry], avoid: Member | None = None) -> None:
        """In-flight messages return to the head of the queue, oldest first, for redelivery;
        past max_deliveries to the dead-letter queue; superseded last values are dropped."""
        limit = self.spec.max_deliveries
        now = self.ctx.clock()
        ordered = sorted(entries, key=lambda e: e.id)
        for entry in ordered:  # dead letters keep their queue order
            if limit and entry.deliveries >= limit:
                self.landed(entry)
                self.count_out(entry)
                self.c.dead_lettered += 1
                self.ctx.dead_letter(self, entry, "max_deliveries")
        for entry in reversed(ordered):  # the rest go back to the head, oldest first
            if limit and entry.deliveries >= limit:
                continue
            self.returned(entry, now)
            entry.avoid = avoid
            self.back_to_head(entry)
            self.c.redelivered += 1
        self.wake_if_room()
        self.dispatch()


    def time_out(self, now: float) -> None:
        """Messages unacknowledged for ack_timeout seconds go back for redelivery."""
        timeout = self.spec.ack_timeout
        if not timeout or not self.inflight:
            return
        for member in list(self.members):
            late = [e for e in member.inflight.values() if now - e.sent_at >= timeout]
            for entry in late:
                del member.inflight[entry.id]
            if late:
                self.give_back(late, avoid=member)

    # -- room for blocked producers --------------------------------------------------------

    def has_room(self) -> bool:
        """Below the low-water mark (90% of each limit), so woken producers make progress."""
        return self.depth <= self.low_messages and self.bytes <= self.low_bytes

    def wake_if_room(self) -> None:
        if self.waiters and self.has_room():
            self.ctx.wakes.extend(self.waiters)
            self.waiters = []

    # -- window refill (called back by the disk segment) -----------------------------------

    def loaded(self, row: StoredRow, now: float) -> None:
        """A message read back from disk joins the window (or expires on the way)."""
        message = row.message
        entry = Entry(row.id, message, row.size, row.lv_key, row.deliveries, message.created,
                      self.deadline(message, message.created))
        key = row.lv_key
        if entry.deadline <= now:
            self.depth -= 1
            self.bytes -= row.size
            self.c.expired += 1
            if self.spec.dead_letter_expired and self.kind != "dead_letter":
                self.c.dead_lettered += 1
                self.ctx.dead_letter(self, entry, "expired")
            else:
                self.ctx.store.delete(row.id)
            if key is not None and (stub := self.lv.get(key)) is not None and stub.id == row.id:
                del self.lv[key]
            return
        self.has_deadlines |= entry.deadline != NEVER
        self.ready.append(entry)
        self.ctx.memory += row.size + ENTRY_OVERHEAD
        if key is not None and (stub := self.lv.get(key)) is not None and stub.id == row.id:
            self.lv[key] = entry

    def ready_count(self) -> int:
        return self.depth - self.inflight

    def purge(self) -> int:
        """Delete every ready message; in-flight ones complete or return. How many went."""
        purged = self.depth - self.inflight
        waiting = [*self.ready, *(entry for _, _, entry in self.delayed)]
        ids = [e.id for e in waiting]
        self.ctx.memory -= sum(e.size for e in waiting) + ENTRY_OVERHEAD * len(ids)
        self.delayed.clear()
        if ids:
            self.ctx.store.delete_many(ids)
        self.ctx.store.delete_after(self.name, self.disk.cursor)
        self.ready.clear()
        self.lv.clear()
        self.disk.reset(self.ctx.last_id)
        self.depth, self.bytes = self.inflight, self.inflight_bytes
        self.wake_if_room()
        return purged

    def close(self) -> list[Member]:
        """The queue is being deleted: forget consumers and messages; returns the members."""
        members = list(self.members)
        for member in members:
            for entry in member.inflight.values():
                self.landed(entry)
                self.count_out(entry)
            member.inflight.clear()
            member.active = False
        self.members.clear()
        self.purge()
        self.ctx.wakes.extend(self.waiters)
        self.waiters = []
        return members
