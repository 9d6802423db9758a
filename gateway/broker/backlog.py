"""The QoS 1/2 messages a session owes beyond its in-flight window, mostly on disk.

A backlog is a small RAM read-ahead (oldest first) followed by a disk part: the session's rows
in `session_messages` with an id above `cursor`, of which only the count and bytes are in RAM.
A persistent session's messages are written to the store before anyone is acknowledged, so
the backlog only decides where the copy it delivers from lives: in RAM while the session is
connected and keeps up, on disk while it is offline or behind. Rows are read back through the
committer (after every write submitted before the read) in id order when the read-ahead falls
to half. Messages that are not stored (clean sessions, retained messages sent at SUBSCRIBE)
can only wait in RAM.

Caps in messages and bytes (`mqtt.max_queued_messages`, `mqtt.max_queued_bytes`, 0 = none)
apply to the whole backlog; at the cap `mqtt.queued_overflow` drops the oldest message or the
new one, and the first drop of an episode is logged (the episode ends when the backlog is below
its caps again). Nothing here touches a socket.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.messages import MESSAGE_OVERHEAD, Message

log = logging.getLogger("gateway.broker")
READ_AHEAD = 256  # messages read into RAM ahead of the in-flight window
READ_AHEAD_BYTES = 1024 * 1024  # and at most this many bytes (a few rows can be large)
DELETE_BATCH = 256  # rows acknowledged in order before their range delete is written
EARLY_LIMIT = 4096  # rows acknowledged out of order kept to move `done_mark` past them
STUCK_SECONDS = 10.0  # a read unanswered this long (its transaction failed) is retried
_NO_RAM: tuple[Outgoing, ...] = ()  # the RAM part of a backlog that never held a message


@dataclass(slots=True)
class Outgoing:
    """A message on its way to one session."""

    message: Message
    qos: int
    retain: bool = False
    sub_ids: tuple[int, ...] = ()
    store_id: int = 0
    token: int = 0
    queue: str = ""
    dup: bool = False


# An owed delivery read back from the store: row id, message, QoS, retain, subscription ids.
Stored = tuple[int, Message, int, bool, tuple[int, ...]]


class BacklogStore(Protocol):
    """What a backlog needs from the session store."""

    def read_backlog(self, client_id: str, after: int, limit: int, max_bytes: int,
                     done: Callable[[list[Stored], bool], None]) -> None: ...
    def remove_message(self, row_id: int) -> None: ...
    def remove_through(self, client_id: str, row_id: int) -> None: ...
    def remove_oldest(self, client_id: str, after: int) -> None: ...


@dataclass(slots=True)
class BacklogContext:
    """What every backlog of one broker shares: the store, the caps, the RAM they hold."""

    store: BacklogStore
    clock: Callable[[], float]
    max_messages: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    overflow: str = "drop_oldest"
    memory: int = 0  # bytes of backlog messages held in RAM, for the memory budget
    dropped: int = 0  # messages dropped at a cap since start-up
    overflowing: int = 0  # backlogs at their cap now

    def full(self, count: int, size: int) -> bool:
        """Whether a backlog of `count` messages and `size` bytes is above its caps."""
        return ((0 < self.max_messages < count) or (0 < self.max_bytes < size))


class Backlog:
    """One session's backlog: `ram` then the rows with ids above `cursor`."""

    __slots__ = ("ctx", "cursor", "disk_bytes", "disk_count", "done_mark", "early", "flight",
                 "gen", "overflowing", "ram", "ram_bytes", "refilling", "sent_max", "spills",
                 "started", "undeleted")

    def __init__(self, ctx: BacklogContext) -> None:
        self.ctx = ctx
        self.ram: deque[Outgoing] | tuple[Outgoing, ...] = _NO_RAM  # a deque once used
        self.ram_bytes = 0
        self.disk_count = 0
        self.disk_bytes = 0
        self.cursor = 0  # highest row id read into RAM, sent, or queued in RAM
        self.refilling = False
        self.gen = 0  # changes when a read under way must be ignored
        self.spills = 0  # rows ever counted on disk (to tell what a read could have seen)
        self.started = 0.0
        self.overflowing = False
        # Row ids sent and not yet done, in order, and those of them done out of order; made
        # when needed (an empty deque takes 760 bytes, and most sessions wait offline).
        self.flight: deque[int] | None = None
        self.early: set[int] | None = None
        self.sent_max = 0  # the highest row id sent
        self.done_mark = 0  # every row up to here is done; `undeleted` of them still exist
        self.undeleted = 0

    def __len__(self) -> int:
        return len(self.ram) + self.disk_count

    def __bool__(self) -> bool:
        return bool(self.ram) or self.disk_count > 0

    @property
    def bytes(self) -> int:
        return self.ram_bytes + self.disk_bytes

    def push(self, out: Outgoing, client_id: str, online: bool) -> bool:
        """Queue `out`; False when the cap's policy dropped it (the caller removes its row)."""
        size = out.message.size
        if not out.token and self.ctx.full(len(self) + 1, self.bytes + size) \
                and not self._make_room(size, client_id):
            return False
        if out.store_id and (not online or self.disk_count or len(self.ram) >= READ_AHEAD
                             or self.ram_bytes >= READ_AHEAD_BYTES):
            self.disk_count += 1
            self.disk_bytes += size
            self.spills += 1
            return True
        self._keep(out, size)
        return True

    def _keep(self, out: Outgoing, size: int) -> None:
        ram = self.ram
        if not isinstance(ram, deque):
            ram = self.ram = deque()
        ram.append(out)
        self.ram_bytes += size
        self.ctx.memory += size + MESSAGE_OVERHEAD
        self.cursor = max(self.cursor, out.store_id)

    def pop(self) -> Outgoing | None:
        """The oldest message in RAM, to send (None when RAM is empty)."""
        ram = self.ram
        if not ram or not isinstance(ram, deque):
            return None
        out = ram.popleft()
        size = out.message.size
        self.ram_bytes -= size
        self.ctx.memory -= size + MESSAGE_OVERHEAD
        return out

    def _make_room(self, size: int, client_id: str) -> bool:
        """At the cap: drop the oldest until `size` more bytes fit, or refuse the new one."""
        ctx = self.ctx
        dropping_new = ctx.overflow == "drop_new" or ctx.full(1, size)
        dropped = 0
        while not dropping_new and self and ctx.full(len(self) + 1, self.bytes + size):
            if self._drop_oldest(client_id):
                dropped += 1
            else:
                dropping_new = True
        fits = not dropping_new and not ctx.full(len(self) + 1, self.bytes + size)
        self._dropped(client_id, dropped if fits else dropped + 1)
        return fits

    def _drop_oldest(self, client_id: str) -> bool:
        ctx = self.ctx
        if self.ram:
            if self.ram[0].token:  # a queue's delivery: the queue decides about it
                return False
            old = self.pop()
            assert old is not None
            if old.store_id:
                ctx.store.remove_message(old.store_id)
            return True
        if not self.disk_count:
            return False
        estimate = self.disk_bytes // self.disk_count
        ctx.store.remove_oldest(client_id, self.cursor)
        self.disk_count -= 1
        self.disk_bytes = self.disk_bytes - estimate if self.disk_count else 0
        self.gen += 1  # a read under way may hold the row just deleted: read again
        self.refilling = False
        return True

    def _dropped(self, client_id: str, count: int) -> None:
        ctx = self.ctx
        ctx.dropped += count
        if not self.overflowing:
            self.overflowing = True
            ctx.overflowing += 1
            log.warning("session %s: backlog at its cap (%d messages, %d bytes): %s",
                        client_id, len(self), self.bytes,
                        "dropping the oldest" if ctx.overflow == "drop_oldest"
                        else "dropping new messages",
                        extra={"CLIENT_ID": client_id, "REASON": "session backlog full"})

    def check_episode(self, client_id: str) -> None:
        """After the backlog shrank: end an overflow episode once below the caps again."""
        if self.overflowing and not self.ctx.full(len(self) + 1, self.bytes):
            self.overflowing = False
            self.ctx.overflowing -= 1
            log.info("session %s: backlog below its cap again (%d messages)", client_id,
                     len(self), extra={"CLIENT_ID": client_id, "REASON": "session backlog"})

    def sent(self, out: Outgoing) -> None:
        """A message went into flight: later rows must not be read for a stored one, and its
        row is deleted when it is done (`done`)."""
        store_id = out.store_id
        if store_id:
            self.cursor = max(self.cursor, store_id)
            if self.flight is None:
                self.flight = deque()
            self.flight.append(store_id)
            self.sent_max = max(self.sent_max, store_id)

    def done(self, client_id: str, out: Outgoing) -> None:
        """A stored message in flight is finished (acknowledged, expired, refused): its row
        goes. Messages are sent in row order and every row below the oldest one still in
        flight is done, so while they are acknowledged in order (as MQTT asks of clients) their
        rows go by range: one delete per `DELETE_BATCH` rows, when nothing is left in flight,
        at the next tick or when the client goes (`flush_done`). Others go one by one."""
        store = self.ctx.store
        flight = self.flight
        store_id = out.store_id
        if not flight or flight[0] != store_id:
            store.remove_message(store_id)
            if flight and flight[0] < store_id <= flight[-1]:  # acknowledged out of order
                early = self.early
                if early is None:
                    early = self.early = set()
                early.add(store_id)
                if len(early) > EARLY_LIMIT:  # the oldest is not acknowledged for long
                    self.flight = deque(row_id for row_id in flight if row_id not in early)
                    self.early = None
            return
        flight.popleft()
        later = self.early
        while later and flight and flight[0] in later:
            later.discard(flight.popleft())
        if out.qos == 2:  # it may have been released (PUBREC), and the range delete leaves those
            store.remove_message(store_id)
        self.done_mark = flight[0] - 1 if flight else self.sent_max
        self.undeleted += 1
        if self.undeleted >= DELETE_BATCH or not flight:
            self.flush_done(client_id)

    def flush_done(self, client_id: str) -> None:
        """Delete the rows up to `done_mark` (in the next transaction)."""
        if self.done_mark:
            self.ctx.store.remove_through(client_id, self.done_mark)
            self.done_mark = self.undeleted = 0

    def refill(self, client_id: str, ready: Callable[[], None]) -> None:
        """Read the next rows when the read-ahead is at half or less; `ready()` after."""
        if self.refilling or not self.disk_count or len(self.ram) > READ_AHEAD // 2:
            return
        self.refilling = True
        self.started = self.ctx.clock()
        gen, spills = self.gen, self.spills
        self.ctx.store.read_backlog(
            client_id, self.cursor, READ_AHEAD - len(self.ram),
            max(READ_AHEAD_BYTES - self.ram_bytes, 1),
            lambda rows, complete: self._refilled(gen, spills, rows, complete, ready))

    def _refilled(self, gen: int, spills: int, rows: list[Stored], complete: bool,
                  ready: Callable[[], None]) -> None:
        if gen != self.gen:
            return
        self.refilling = False
        cursor, ram, count, size = self.cursor, self.ram, 0, 0
        if not isinstance(ram, deque):
            ram = self.ram = deque()
        for row_id, message, qos, retain, sub_ids in rows:
            if row_id > cursor:
                ram.append(Outgoing(message, qos, retain, sub_ids, row_id))
                count += 1
                size += message.size
                cursor = row_id
        self.cursor = cursor
        self.disk_count -= count
        self.disk_bytes -= size
        self.ram_bytes += size
        self.ctx.memory += size + MESSAGE_OVERHEAD * count
        if complete:
            self._exhausted(self.spills - spills)
        if self.disk_count <= 0:
            self.disk_count = self.disk_bytes = 0
        ready()

    def _exhausted(self, unseen: int) -> None:
        """The read reached the last row: what is still counted on disk must have been written
        after it was submitted. More means a failed transaction lost rows: count them out."""
        if self.disk_count > unseen:
            log.warning("session backlog: %d messages counted but not found on disk (a failed "
                        "store write?); recounting", self.disk_count - unseen)
            self.disk_bytes = self.disk_bytes * unseen // self.disk_count
            self.disk_count = unseen

    def unstick(self, now: float) -> bool:
        """A read whose transaction failed never answers: True when it should be retried."""
        if self.refilling and now - self.started > STUCK_SECONDS:
            self.gen += 1
            self.refilling = False
            return True
        return False

    def offline(self) -> None:
        """The client is gone: stored messages leave RAM (they are read again on return);
        only messages that are not stored stay."""
        stored = [out for out in self.ram if out.store_id]
        self.gen += 1
        self.refilling = False
        if not self.ram:
            self.ram = _NO_RAM  # no block at all, not the ones a drained burst left behind
        if not self.flight:
            self.flight = self.early = None
        if not stored:
            return
        kept = deque(out for out in self.ram if not out.store_id)
        size = sum(out.message.size for out in stored)
        self.disk_count += len(stored)
        self.disk_bytes += size
        self.cursor = stored[0].store_id - 1
        self.ram = kept
        self.ram_bytes -= size
        self.ctx.memory -= size + MESSAGE_OVERHEAD * len(stored)

    def clear(self) -> None:
        """The session ended: its RAM part goes (its rows are deleted with the session)."""
        self.ctx.memory -= self.ram_bytes + MESSAGE_OVERHEAD * len(self.ram)
        if self.overflowing:
            self.overflowing = False
            self.ctx.overflowing -= 1
        self.ram = _NO_RAM
        self.flight = self.early = None
        self.ram_bytes = self.disk_count = self.disk_bytes = self.sent_max = 0
        self.done_mark = self.undeleted = 0
        self.gen += 1
        self.refilling = False
