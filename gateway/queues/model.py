"""The vocabulary shared by the queue engine and the broker that drives it.

`Consumer` is what the broker's session offers the engine; `Delivery` is what the engine asks it
to send; `PublishOutcome` and `QueueStats` are what the engine answers. `Entry` and `Member` are
the engine's own bookkeeping for one queued message and one consumer of one queue. Nothing here
does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.messages import MESSAGE_OVERHEAD, Message

Kind = Literal["standard", "last_value", "template", "instance", "dead_letter"]
QUOTA_EXCEEDED = 0x97
UNSPECIFIED_ERROR = 0x80
TOPIC_FILTER_INVALID = 0x8F
PACKET_TOO_LARGE = 0x95
ENTRY_OVERHEAD = MESSAGE_OVERHEAD  # bytes of RAM an in-memory message costs beyond its size
NEVER = float("inf")


class QueueError(ValueError):
    """A management request that cannot be done; the message says why, for a person."""


class LimitReached(QueueError):
    """Creating a queue or template instance would pass `storage.max_queues` or
    `storage.max_instances` (`limit` names which); MQTT clients get 0x97 Quota exceeded."""

    def __init__(self, limit: str, text: str) -> None:
        super().__init__(text)
        self.limit = limit


class Consumer(Protocol):
    """One connected client consuming queues (implemented by the broker's session)."""

    client_id: str

    def queue_capacity(self) -> int:
        """Free in-flight slots now (receive maximum minus in flight). For QoS 0 consumers,
        0 while the output buffer is too full to take more."""
        ...

    def queue_deliver(self, delivery: Delivery) -> None:
        """Send it now as a PUBLISH. Must not call back into the engine synchronously."""
        ...


@dataclass(slots=True)
class Delivery:
    """One message to send to one consumer. `token` comes back in `ack`/`reject`; `filters`
    are the consumer's filters naming the queue (for their subscription options)."""

    token: int
    queue: str
    message: Message
    qos: int
    dup: bool
    filters: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class PublishOutcome:
    """What enqueueing one PUBLISH did: see `QueueEngine.publish`."""

    matched: int = 0
    reason: int = 0
    blocked: str | None = None


NO_MATCH = PublishOutcome()
REJECTED = PublishOutcome(0, QUOTA_EXCEEDED)


@dataclass(slots=True, frozen=True)
class QueueStats:
    """A snapshot of one queue for `$SYS/`, Prometheus, the admin API and the TUI.

    depth/bytes count every stored message (ready and in flight); lag_messages counts the ready
    ones not yet delivered; lag_seconds is the age of the oldest unacknowledged message;
    oldest_age the age of the oldest message still waiting for its first or next delivery.
    Counters are totals since start-up; rates are messages/s, smoothed over ~10 s.
    """

    name: str
    filter: str
    kind: Kind
    dispatch: str
    depth: int
    bytes: int
    consumers: int
    inflight: int
    in_rate: float
    out_rate: float
    lag_messages: int
    lag_seconds: float
    oldest_age: float
    enqueued: int
    acked: int
    redelivered: int
    dropped: int
    rejected: int
    replaced: int
    dead_lettered: int
    expired: int
    nacked: int
    blocked: int
    key_errors: int
    oversize: int


@dataclass(slots=True)
class Counters:
    """Totals since start-up; `QueueStats` documents each."""

    enqueued: int = 0
    acked: int = 0
    redelivered: int = 0
    dropped: int = 0
    rejected: int = 0
    replaced: int = 0
    dead_lettered: int = 0
    expired: int = 0
    nacked: int = 0
    blocked: int = 0
    key_errors: int = 0
    oversize: int = 0


class Entry:
    """One stored message of one queue, in RAM (ready or in flight) or a stub of one on disk."""

    __slots__ = ("avoid", "created", "deadline", "deliveries", "held", "id", "lv_key",
                 "member", "message", "sent_at", "size", "too_big")

    def __init__(self, id_: int, message: Message | None, size: int, lv_key: str | None,
                 deliveries: int, created: float, deadline: float) -> None:
        self.id = id_
        self.message = message  # None: a last-value stub for a message that waits on disk
        self.size = size
        self.lv_key = lv_key
        self.deliveries = deliveries
        self.created = created
        self.deadline = deadline
        self.sent_at = 0.0
        self.held = 0.0  # seconds spent in flight so far: they do not count against the ttl
        self.member: Member | None = None
        self.avoid: Member | None = None  # rejected by this consumer: prefer another
        self.too_big: set[Member] | None = None  # over these consumers' Maximum Packet Size


class MemberQueue(Protocol):
    """What a member's consumer events need of its queue (`gateway.queues.queue.Queue`)."""

    members: list[Member]

    def ack(self, member: Member, token: int) -> bool: ...
    def reject(self, member: Member, token: int) -> None: ...
    def too_large(self, member: Member, token: int) -> None: ...
    def detach(self, member: Member) -> None: ...
    def dispatch(self) -> None: ...


@dataclass(slots=True, eq=False)
class Member:
    """One consumer's subscription to one queue, with its unacknowledged messages."""

    consumer: Consumer
    queue: MemberQueue
    qos: int
    inflight: dict[int, Entry] = field(default_factory=dict)
    acked: int = 0
    active: bool = True  # False once it has left the queue (UNSUBSCRIBE, queue deleted)
    filters: set[str] = field(default_factory=set)  # the consumer's filters naming this queue

    def can_take(self, entry: Entry) -> bool:
        """Whether `entry` fits this consumer's Maximum Packet Size (as far as we know)."""
        return entry.too_big is None or self not in entry.too_big

    def has_room(self, max_inflight: int) -> bool:
        if not self.active:
            return False
        if self.qos == 0:
            return self.consumer.queue_capacity() > 0
        return len(self.inflight) < max_inflight and self.consumer.queue_capacity() > 0
