"""The application message as the broker, the queues and the store share it.

A `Message` is what a PUBLISH carries once it is accepted: topic, payload, QoS, retain flag,
the 5.0 properties to forward, who sent it and when it expires. It is never mutated after
creation; deliveries wrap it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mqtt.properties import Properties


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
