"""The application message as the broker, the queues and the store share it.

A `Message` is what a PUBLISH carries once it is accepted: topic, payload, QoS, retain flag,
the 5.0 properties to forward, who sent it and when it expires. It is never mutated after
creation; deliveries wrap it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mqtt.properties import Properties

_PER_HOP = ("topic_alias", "subscription_identifier", "message_expiry_interval",
            "will_delay_interval")


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

    def remaining_expiry(self, now: float) -> int | None:
        """Seconds of message expiry left (5.0 §3.3.2.3.3), or None without expiry."""
        if self.expires_at is None:
            return None
        return max(0, int(self.expires_at - now + 0.999))

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic)


def received(topic: str, payload: bytes, qos: int, retain: bool, properties: Properties,
             client_id: str, now: float) -> Message:
    """The message a PUBLISH (or a will) carries: per-hop properties dropped, the 5.0 message
    expiry interval turned into a deadline."""
    expires_at = None
    if properties:
        expiry = properties.get("message_expiry_interval")
        if expiry is not None:
            expires_at = now + expiry
        if any(k in properties for k in _PER_HOP):
            properties = {k: v for k, v in properties.items()  # type: ignore[assignment]
                          if k not in _PER_HOP}
    return Message(topic, payload, qos, retain, properties, client_id, now, expires_at)
