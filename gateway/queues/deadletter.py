"""Dead letters: how a message is marked when it moves to a dead-letter queue, and read back.

A dead letter keeps its topic, payload and properties, and gains three MQTT 5 user properties
(as RabbitMQ's `x-death` headers): `x-death-reason` (`max_deliveries`, `packet_too_large`,
`expired`), `x-death-queue` (the queue it died in, which a replay returns it to) and
`x-death-deliveries` (how many times that queue had delivered it).
"""

from __future__ import annotations

import dataclasses

from gateway.messages import Message
from gateway.mqtt.properties import Properties

REASON = "x-death-reason"
SOURCE = "x-death-queue"
DELIVERIES = "x-death-deliveries"
_MARKS = (REASON, SOURCE, DELIVERIES)


def mark_dead(message: Message, reason: str, queue: str, deliveries: int) -> Message:
    """The dead-letter copy of `message`: earlier marks replaced by this death's."""
    users = [(k, v) for k, v in message.properties.get("user_property", ()) if k not in _MARKS]
    marks = [(REASON, reason), (SOURCE, queue), (DELIVERIES, str(deliveries))]
    props: Properties = {**message.properties, "user_property": [*users, *marks]}
    return dataclasses.replace(message, properties=props, expires_at=None)


def unmark(message: Message, now: float) -> Message:
    """A dead letter as it re-enters a queue on replay: marks removed, enqueued anew at `now`."""
    users = [(k, v) for k, v in message.properties.get("user_property", ()) if k not in _MARKS]
    props: Properties = {k: v for k, v in message.properties.items()  # type: ignore[assignment]
                         if k != "user_property"}
    if users:
        props["user_property"] = users
    return dataclasses.replace(message, properties=props, created=now)


def mark(message: Message, name: str) -> str | None:
    """The value of dead-letter mark `name` (REASON or SOURCE), or None."""
    for k, v in message.properties.get("user_property", ()):
        if k == name:
            return v
    return None
