"""The application message as the broker, the queues and the store share it.

A `Message` is what a PUBLISH carries once it is accepted: topic, payload, QoS, retain flag,
the 5.0 properties to forward, who sent it and when it expires. It is never mutated after
creation; deliveries wrap it instead.

`Message.size` is the one measure of a message that every limit uses (queue `max_bytes`, session
backlog caps, the memory budget, metrics): topic, payload and properties, each user property
with the Python objects that hold it, so that a message of ten thousand empty user properties
is not counted as empty. `MESSAGE_OVERHEAD` is the fixed cost of one message held in RAM (the
objects around it), added by whoever keeps messages in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.mqtt.properties import Properties, forwarded

MESSAGE_OVERHEAD = 200  # bytes of RAM one held message costs beyond `Message.size`
_PAIR_OVERHEAD = 170  # a user property: its tuple, two str objects and a list slot
_VALUE_OVERHEAD = 50  # a str or bytes property value: its object header
_PROPS_OVERHEAD = 64  # the property dict itself


@dataclass(slots=True)
class PublishResult:
    """What became of one accepted message: how many queues and subscribers took it, whether
    anything was written to the store (the producer's ack then waits for the commit), a queue's
    refusal reason (>= 0x80), or the name of the full `block` queue holding it back."""

    matched: int
    durable: bool
    reason: int = 0
    blocked: str | None = None


@dataclass(slots=True, frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=Properties)
    client_id: str = ""
    created: float = 0.0
    expires_at: float | None = None
    size: int = field(default=-1, compare=False)

    def __post_init__(self) -> None:
        if self.size < 0:  # `received` and the stores pass it; everyone else gets it here
            object.__setattr__(self, "size", message_size(self.topic, self.payload,
                                                          self.properties))

    def properties_at(self, now: float) -> Properties:
        """The 5.0 properties the message is sent on with, to a client or an upstream broker
        alike: those it was published with (`properties.FORWARDED`, kept by `received`) and
        the message expiry it has left, at least a second (5.0 §3.3.2.3.3). A new dict: the
        sender adds its per-hop properties."""
        props: Properties = {**self.properties}
        if self.expires_at is not None:
            props["message_expiry_interval"] = max(1, int(self.expires_at - now + 0.999))
        return props

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


_FIELDS = ("topic", "payload", "qos", "retain", "properties", "client_id", "created", "expires_at",
           "size")
_SETTERS = tuple(getattr(Message, name).__set__ for name in _FIELDS)


def restored(topic: str, payload: bytes, qos: int, retain: bool, properties: Properties,
             client_id: str, created: float, expires_at: float | None, size: int) -> Message:
    """The `Message` a store row holds, with its size as stored: the same object as
    `Message(...)`, built through the slots directly (the frozen dataclass `__init__` sets
    each field through `object.__setattr__`, which costs more than reading the row did)."""
    message: Message = object.__new__(Message)
    topic_, payload_, qos_, retain_, props_, client_, created_, expires_, size_ = _SETTERS
    topic_(message, topic)
    payload_(message, payload)
    qos_(message, qos)
    retain_(message, retain)
    props_(message, properties)
    client_(message, client_id)
    created_(message, created)
    expires_(message, expires_at)
    size_(message, size)
    return message


def message_size(topic: str, payload: bytes, properties: Properties) -> int:
    """Bytes a message's content costs: topic, payload and properties (see `properties_size`)."""
    size = len(topic) + len(payload)
    if properties:
        size += properties_size(properties)
    return size


def properties_size(properties: Properties) -> int:
    """Bytes 5.0 properties cost in RAM: their values plus the objects that hold them."""
    total = _PROPS_OVERHEAD
    for key, value in properties.items():
        if isinstance(value, (str, bytes)):
            total += len(value) + _VALUE_OVERHEAD
        elif key != "user_property":
            total += 8
    for name, text in properties.get("user_property", ()):
        total += len(name) + len(text) + _PAIR_OVERHEAD
    return total


def received(topic: str, payload: bytes, qos: int, retain: bool, properties: Properties,
             client_id: str, now: float) -> Message:
    """The message a PUBLISH (or a will) carries: the properties that travel with it
    (`properties.forwarded`), the 5.0 message expiry interval turned into a deadline."""
    expires_at = None
    if properties:
        expiry = properties.get("message_expiry_interval")
        if expiry is not None:
            expires_at = now + expiry
        properties = forwarded(properties)
    size = len(topic) + len(payload)
    if properties:
        size += properties_size(properties)
    return Message(topic, payload, qos, retain, properties, client_id, now, expires_at, size)


OnCommit = Callable[[Callable[[bool], None]], None]  # `Committer.on_commit`


class Producer(Protocol):
    """Whoever publishes into the broker and answers for it (a client connection, a bridge)."""

    acks_waiting: int  # acknowledgements held back for a commit


def answer_now(producer: Producer, durable: bool) -> bool:
    """Whether a producer's answer for one message goes at once: the message wrote nothing to
    the store and no earlier answer waits. Otherwise `answer_after_commit`: answers keep the
    order of the messages, and none says "stored" before the store has it."""
    return not durable and not producer.acks_waiting


def answer_after_commit(producer: Producer, on_commit: OnCommit,
                        answer: Callable[[bool], None]) -> None:
    """Answer once the store's current commit is done: `answer(True)`, or `answer(False)`
    when it failed (nothing acknowledged may be lost: the producer must not be told it is
    stored). Local clients and bridges alike."""
    producer.acks_waiting += 1

    def committed(ok: bool) -> None:
        producer.acks_waiting -= 1
        answer(ok)

    on_commit(committed)
