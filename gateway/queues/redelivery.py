"""What happens to a message that comes back unacknowledged: rejected by its consumer, too
large for it, timed out, or returned by a disconnect or UNSUBSCRIBE.

It goes back to the head of its queue (oldest first) and is redelivered with DUP set, unless:
it has had `max_deliveries` deliveries (then it is dead-lettered with reason `max_deliveries`);
a newer value of its last-value key arrived meanwhile (then it is dropped as replaced); or a
consumer rejected it and the queue has a `redelivery_delay` (then it waits that long, doubled
for each earlier delivery up to `redelivery_delay_max`, before it returns, so that one poison
message does not hold up the messages behind it). The time a message spends in flight does not
count against its ttl.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING

from gateway.queues.model import Entry, Member

if TYPE_CHECKING:
    from gateway.queues.queue import Queue

log = logging.getLogger(__name__)


def reject(q: Queue, member: Member, token: int) -> None:
    """A consumer rejected a delivery (5.0 reason >= 0x80): prefer another consumer."""
    entry = member.inflight.pop(token, None)
    if entry is None:
        return
    q.c.nacked += 1
    limit = q.spec.max_deliveries
    delay = retry_delay(q, entry)
    if not delay or (limit and entry.deliveries >= limit):
        give_back(q, [entry], avoid=member)
        return
    now = q.ctx.clock()
    q.returned(entry, now)
    entry.avoid = member
    heapq.heappush(q.delayed, (now + delay, entry.id, entry))
    q.c.redelivered += 1
    q.dispatch()


def retry_delay(q: Queue, entry: Entry) -> float:
    """`redelivery_delay` doubled for each delivery before the last one, capped."""
    base = q.spec.redelivery_delay
    if not base:
        return 0.0
    return float(min(base * 2 ** min(max(entry.deliveries - 1, 0), 30),
                     max(q.spec.redelivery_delay_max, base)))


def release_due(q: Queue, now: float) -> None:
    """Rejected messages whose delay is over return to the head of the queue, oldest first."""
    due: list[Entry] = []
    while q.delayed and q.delayed[0][0] <= now:
        due.append(heapq.heappop(q.delayed)[2])
    for entry in sorted(due, key=lambda e: e.id, reverse=True):
        back_to_head(q, entry)


def back_to_head(q: Queue, entry: Entry) -> None:
    key = entry.lv_key
    if key is not None:
        if key in q.lv:  # a newer value arrived while this one was out
            q.count_out(entry)
            q.ctx.store.delete(entry.id)
            q.c.replaced += 1
            return
        q.lv[key] = entry
    q.ready.appendleft(entry)


def too_large(q: Queue, member: Member, token: int) -> None:
    """The message exceeds `member`'s Maximum Packet Size and was not sent: not a delivery.
    It goes to another consumer that may take it, else to the dead-letter queue (a
    dead-letter queue keeps it for a consumer that can take it)."""
    entry = member.inflight.pop(token, None)
    if entry is None:
        return
    entry.deliveries -= 1
    q.ctx.store.set_deliveries(entry.id, entry.deliveries)
    q.c.oversize += 1
    log.info("queue %s: message %d (%d bytes) exceeds the Maximum Packet Size of %s",
             q.name, entry.id, entry.size, member.consumer.client_id)
    entry.too_big = (entry.too_big or set()) | {member}
    if q.kind == "dead_letter" or any(m.active and m.can_take(entry) for m in q.members):
        give_back(q, [entry])
        return
    q.landed(entry)
    q.count_out(entry)
    q.c.dead_lettered += 1
    q.ctx.dead_letter(q, entry, "packet_too_large")
    q.wake_if_room()
    q.dispatch()


def give_back(q: Queue, entries: list[Entry], avoid: Member | None = None) -> None:
    """In-flight messages return to the head of the queue, oldest first, for redelivery;
    past max_deliveries to the dead-letter queue; superseded last values are dropped."""
    limit = q.spec.max_deliveries
    now = q.ctx.clock()
    ordered = sorted(entries, key=lambda e: e.id)
    for entry in ordered:  # dead letters keep their queue order
        if limit and entry.deliveries >= limit:
            q.landed(entry)
            q.count_out(entry)
            q.c.dead_lettered += 1
            q.ctx.dead_letter(q, entry, "max_deliveries")
    for entry in reversed(ordered):  # the rest go back to the head, oldest first
        if limit and entry.deliveries >= limit:
            continue
        q.returned(entry, now)
        entry.avoid = avoid
        back_to_head(q, entry)
        q.c.redelivered += 1
    q.wake_if_room()
    q.dispatch()


def time_out(q: Queue, now: float) -> None:
    """Messages unacknowledged for ack_timeout seconds go back for redelivery."""
    timeout = q.spec.ack_timeout
    if not timeout or not q.inflight:
        return
    for member in list(q.members):
        late = [e for e in member.inflight.values() if now - e.sent_at >= timeout]
        for entry in late:
            del member.inflight[entry.id]
        if late:
            give_back(q, late, avoid=member)
