"""The part of a queue that waits on disk beyond its RAM window, and how it is read back.

A queue's ready messages are a RAM window (oldest first) followed by a disk segment: every row
of the queue with an id above `cursor`. Only the segment's count and bytes are in RAM. When the
window falls to half its size, the next rows are read through the committer (the read runs
after every write submitted before it, so nothing enqueued is missed) and appended in id order.
A read is bounded in messages (`queue_window`) and in bytes (what is left of the windows' memory
budget, at least one message), at start-up as at run time.

Deletions inside the segment cannot wait for a read, so they are remembered: a last-value
replacement deletes a known id (`gone`, filtered out of the next reads), and drop_oldest with an
empty window drops "the next row to come" (`skips`, deleted as it arrives). `gen` changes on
purge and delete so a read that was already under way is ignored.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway.queues.model import Entry

if TYPE_CHECKING:
    from gateway.store.queues import QueueStore, StoredRow

log = logging.getLogger(__name__)
STUCK_SECONDS = 10.0


class Owner(Protocol):
    """What a disk segment needs of its queue (`gateway.queues.queue.Queue`)."""

    name: str
    ctx: Context
    ready: deque[Entry]
    lv: dict[str, Entry]
    depth: int
    bytes: int

    def loaded(self, row: StoredRow, now: float) -> None: ...
    def wake_if_room(self) -> None: ...
    def dispatch(self) -> None: ...


class Context:
    """What every queue of one engine shares: the store, the clock, the RAM budget, ids."""

    __slots__ = ("budget", "clock", "dead_letter", "last_id", "memory", "store", "wakes",
                 "window")

    def __init__(self, store: QueueStore, clock: Callable[[], float], window: int, budget: int,
                 dead_letter: Callable[[Owner, Entry, str], None]) -> None:
        self.store = store
        self.clock = clock
        self.window = window
        self.budget = budget
        self.dead_letter = dead_letter
        self.memory = 0  # bytes of messages held in RAM (windows and in flight)
        self.last_id = 0  # ids of queue_messages are allocated here; they only grow
        self.wakes: list[Callable[[], None]] = []  # producers to call back once safe

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id


class DiskSegment:
    """The queue's ready messages with ids above `cursor`, not yet in RAM."""

    __slots__ = ("bytes", "count", "cursor", "gen", "gone", "q", "refilling", "skips",
                 "spills", "started")

    def __init__(self, queue: Owner) -> None:
        self.q = queue
        self.count = 0
        self.bytes = 0
        self.cursor = 0  # highest id read into RAM (or kept there at enqueue)
        self.refilling = False
        self.gen = 0
        self.gone: set[int] = set()
        self.skips: deque[int] = deque()  # estimated sizes of rows to drop on arrival
        self.spills = 0  # messages ever sent to the segment (to tell what a read could see)
        self.started = 0.0  # when the read under way was submitted

    def spill(self, size: int) -> bool:
        """Whether a new message must wait on disk rather than join the RAM window."""
        q = self.q
        ctx = q.ctx
        if (self.count or self.skips or self.refilling or len(q.ready) >= ctx.window
                or ctx.memory > ctx.budget):
            self.count += 1
            self.bytes += size
            self.spills += 1
            return True
        return False

    def forget(self, stub: Entry) -> None:
        """A message of the segment was deleted by id (last-value replacement)."""
        self.gone.add(stub.id)
        self.count -= 1
        self.bytes -= stub.size

    def drop_oldest(self) -> bool:
        """Drop the segment's first row (the window is empty); False if there is none."""
        if not self.count:
            return False
        estimate = self.bytes // self.count
        self.skips.append(estimate)
        self.count -= 1
        self.bytes -= estimate
        self.q.depth -= 1
        self.q.bytes -= estimate
        self.refill_if_low()
        return True

    def reset(self, cursor: int) -> None:
        """After purge or delete: nothing waits on disk any more."""
        self.count = self.bytes = 0
        self.gone.clear()
        self.skips.clear()
        self.gen += 1
        self.refilling = False
        self.cursor = cursor

    def refill_if_low(self) -> None:
        q = self.q
        ctx = q.ctx
        if self.refilling or not (self.count or self.skips):
            return
        have = len(q.ready)
        if not self.skips and (have > ctx.window // 2 or (have and ctx.memory > ctx.budget)):
            return
        limit = max(ctx.window - have, 1) + len(self.skips)
        room = max(ctx.budget - ctx.memory, 0)  # bytes, not only messages: see `read_rows`
        self.refilling = True
        self.started = ctx.clock()
        gen, spills = self.gen, self.spills
        ctx.store.read_window(q.name, self.cursor, limit, room,
                              lambda rows, cut: self.refilled(gen, spills, limit, rows, cut))

    def unstick(self, now: float) -> None:
        """A read that failed never answers (the committer drops its callback): retry."""
        if self.refilling and now - self.started > STUCK_SECONDS:
            log.warning("queue %s: window read unanswered for %.0f s; retrying", self.q.name,
                        now - self.started)
            self.gen += 1
            self.refilling = False
            self.refill_if_low()

    def refilled(self, gen: int, spills: int, limit: int, rows: list[StoredRow],
                 cut: bool) -> None:
        if gen != self.gen:
            return
        self.refilling = False
        self.take(rows)
        if len(rows) < limit and not cut:
            self._exhausted(self.spills - spills)
        q = self.q
        q.wake_if_room()
        q.dispatch()

    def take(self, rows: list[StoredRow]) -> None:
        """Rows read in id order become window entries, unless deleted meanwhile."""
        q = self.q
        now = q.ctx.clock()
        for row in rows:
            if row.id <= self.cursor:
                continue
            self.cursor = row.id
            if row.id in self.gone:
                self.gone.discard(row.id)
            elif self.skips:
                self._skip(row)
            else:
                self.count -= 1
                self.bytes -= row.size
                q.loaded(row, now)
        if self.gone:
            self.gone = {i for i in self.gone if i > self.cursor}

    def _skip(self, row: StoredRow) -> None:
        correction = self.skips.popleft() - row.size
        self.bytes += correction
        q = self.q
        q.bytes += correction
        q.ctx.store.delete_now(row.id)
        key = row.lv_key
        if key is not None and (stub := q.lv.get(key)) is not None and stub.id == row.id:
            del q.lv[key]

    def _exhausted(self, unseen: int) -> None:
        """The read found the end of the queue: whatever is still counted must have been
        written after it was submitted. More than that means a failed transaction lost rows."""
        if self.count > unseen:
            lost = self.count - unseen
            lost_bytes = self.bytes if not unseen else self.bytes * lost // self.count
            log.warning("queue %s: %d messages counted but not found on disk (a failed "
                        "store write?); recounting", self.q.name, lost)
            self.q.depth -= lost
            self.q.bytes -= lost_bytes
            self.count -= lost
            self.bytes -= lost_bytes
        if not unseen:
            self.skips.clear()
            self.gone.clear()
