"""What the TUI shows, as frozen records built from the admin API's JSON.

The JSON becomes records through `msgspec.convert`, leniently on purpose: a field the gateway
does not send (an older gateway) takes its default, a field it adds (a newer one) is ignored,
a number sent as a string is converted; so the view keeps working. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


def _convert(raw: Any, cls: type[T]) -> T:
    """An admin API object as `cls` (a dataclass): absent and null fields take their
    defaults (an anonymous client's `username` is null)."""
    given = {k: v for k, v in raw.items() if v is not None} if isinstance(raw, dict) else {}
    return msgspec.convert(given, cls, strict=False)


def _int(raw: dict[str, Any], key: str) -> int:
    try:
        return int(raw.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _float(raw: dict[str, Any], key: str) -> float:
    try:
        return float(raw.get(key) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue's figures (see `gateway.queues.model.QueueStats` for each meaning)."""

    name: str
    filter: str = ""
    kind: str = "standard"
    dispatch: str = ""
    depth: int = 0
    bytes: int = 0
    consumers: int = 0
    inflight: int = 0
    in_rate: float = 0.0
    out_rate: float = 0.0
    lag_messages: int = 0
    lag_seconds: float = 0.0
    oldest_age: float = 0.0
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
    max_messages: int = 0  # the limits; 0: none (or an older gateway that does not say)
    max_bytes: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> QueueRow:
        row = _convert(raw, cls)
        return dataclasses.replace(row, name=row.name or row.filter,
                                   kind=row.kind or "standard")

    @property
    def fill(self) -> float | None:
        """How full the queue is, as the larger fraction of its two limits (None: no limit)."""
        fractions = [used / limit for used, limit in ((self.depth, self.max_messages),
                                                      (self.bytes, self.max_bytes)) if limit]
        return max(fractions) if fractions else None


@dataclass(frozen=True, slots=True)
class ClientRow:
    """One connected MQTT client."""

    client_id: str
    peer: str = ""
    username: str = ""
    protocol: str = ""
    listener: str = ""
    keepalive: int = 0
    connected_seconds: float = 0.0
    inflight: int = 0
    queued: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ClientRow:
        return _convert(raw, cls)


@dataclass(frozen=True, slots=True)
class ConsumerRow:
    """One consumer of one queue, with its unacknowledged and acknowledged counts. `active` is
    False once it unsubscribed while messages were still in flight to it."""

    client_id: str
    inflight: int = 0
    acked: int = 0
    qos: int | None = None
    active: bool = True

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ConsumerRow:
        return _convert(raw, cls)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One stored message as the gateway samples or peeks it (oldest first); for a dead letter,
    why it died (`reason`), where (`source`) and after how many deliveries (`died_after`)."""

    topic: str
    payload: str = ""  # the first bytes, decoded leniently
    bytes: int = 0
    client_id: str = ""  # the producer
    deliveries: int = 0
    created: float = 0.0
    reason: str = ""
    source: str = ""
    died_after: int | None = None
    qos: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    whole: builtins.bytes | None = None  # the whole payload, when asked for

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> DeadLetter:
        died_after = raw.get("died_after")
        properties = raw.get("properties")
        return cls(topic=_str(raw, "topic"), payload=_str(raw, "payload"),
                   bytes=_int(raw, "bytes"), client_id=_str(raw, "client_id"),
                   deliveries=_int(raw, "deliveries"), created=_float(raw, "created"),
                   reason=_str(raw, "reason"), source=_str(raw, "source"),
                   died_after=died_after if isinstance(died_after, int) else None,
                   qos=_int(raw, "qos"),
                   properties=properties if isinstance(properties, dict) else {},
                   whole=_base64(raw.get("payload_base64")))

    @property
    def tries(self) -> int:
        """Deliveries of the message: in the queue it died in, for a dead letter."""
        return self.deliveries if self.died_after is None else self.died_after


def _base64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Storage:
    """The store's health (`GET /storage`); all zero from a gateway that does not serve it."""

    database_bytes: int = 0
    wal_bytes: int = 0
    disk_free: int = 0
    min_free_bytes: int = 0
    disk_full: bool = False
    memory_in_use: int = 0
    memory_budget: int = 0
    memory_full: bool = False
    producers_paused: int = 0
    store_error: str = ""  # the last commit's failure; empty while commits succeed

    @classmethod
    def parse(cls, raw: Any) -> Storage:
        return _convert(raw, cls)

    @property
    def trouble(self) -> bool:
        """Whether something needs the operator: disk full, memory full, paused, errors."""
        return (self.disk_full or self.memory_full or self.producers_paused > 0
                or bool(self.store_error))


@dataclass(frozen=True, slots=True)
class QueueDetail:
    """A queue's drill-down (`GET /queues/<name>`): figures, settings, consumers and its
    dead-letter queue (`$dlq/<name>`, absent until a message is first dead-lettered)."""

    stats: QueueRow
    settings: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # config | runtime | instance | dlq
    consumers: tuple[ConsumerRow, ...] = ()
    dead_letter_queue: str = ""
    dead_letter_depth: int = 0
    dead_letters: tuple[DeadLetter, ...] = ()

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> QueueDetail:
        stats_raw = raw.get("stats")
        stats = QueueRow.parse(stats_raw if isinstance(stats_raw, dict) else raw)
        settings = raw.get("settings")
        dlq = raw.get("dead_letter")
        dlq = dlq if isinstance(dlq, dict) else {}
        return cls(
            stats=stats,
            settings=settings if isinstance(settings, dict) else {},
            origin=_str(raw, "origin"),
            consumers=tuple(ConsumerRow.parse(c) for c in _dicts(raw.get("consumers"))),
            dead_letter_queue=_str(dlq, "name"),
            dead_letter_depth=_int(dlq, "depth"),
            dead_letters=tuple(DeadLetter.parse(m) for m in _dicts(dlq.get("sample"))))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the main screen shows, fetched together once per refresh."""

    queues: tuple[QueueRow, ...] = ()
    clients: tuple[ClientRow, ...] = ()
    broker: dict[str, Any] = field(default_factory=dict)
    storage: Storage = field(default_factory=Storage)
    history: HistoryUpdate | None = None

    @classmethod
    def parse(cls, queues: Any, clients: Any, broker: Any, storage: Any = None,
              history: Any = None) -> Snapshot:
        return cls(queues=tuple(QueueRow.parse(q) for q in _dicts(queues)),
                   clients=tuple(ClientRow.parse(c) for c in _dicts(clients)),
                   broker=broker if isinstance(broker, dict) else {},
                   storage=Storage.parse(storage), history=HistoryUpdate.parse(history))

    def queue(self, name: str) -> QueueRow | None:
        return next((q for q in self.queues if q.name == name), None)


class QueueTrend(msgspec.Struct, frozen=True):
    """One queue's sampled series, oldest first, ending at the newest sample; `start` is the
    number of the sample it began with (a series with another `start` is another series)."""

    start: int = 0
    depth: tuple[float, ...] = ()
    lag_messages: tuple[float, ...] = ()
    lag_seconds: tuple[float, ...] = ()
    in_rate: tuple[float, ...] = ()
    out_rate: tuple[float, ...] = ()


class HistoryUpdate(msgspec.Struct, frozen=True):
    """`GET /history?since=N`: the samples after number N; `ages` says how long ago each was
    taken; the rates of a sample are averages over the `interval` before it."""

    interval: float = 5.0
    window: float = 900.0
    taken: int = 0
    ages: tuple[float, ...] = ()
    queues: dict[str, QueueTrend] = msgspec.field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> HistoryUpdate | None:
        """None for a gateway that keeps no history (an older one, or `admin.history = 0`)."""
        return None if raw is None else msgspec.convert(raw, cls)
