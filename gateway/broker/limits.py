"""Limits on what one client can create: subscriptions per session, connections per user.

Each refusal is a reason code for the client (SUBACK or CONNACK 0x97 Quota exceeded), a count
in the metrics, and a log line — at most one a minute per limit, saying how many were refused
since the last one, so that a client retrying in a loop cannot flood the journal.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.broker.connection import Connection
    from gateway.broker.session import Session

log = logging.getLogger("gateway.broker")
LOG_INTERVAL = 60.0


class Refusals:
    """Refusals of one limit: a total for the metrics and a rate-limited log line."""

    __slots__ = ("_logged_at", "_unlogged", "total", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self.total = 0
        self._unlogged = 0
        self._logged_at = -LOG_INTERVAL

    def refuse(self, who: str, limit: int) -> None:
        self.total += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL:
            log.warning("%s refused: %s is at its limit of %d (%d refused since the last "
                        "report)", self.what, who, limit, self._unlogged,
                        extra={"CLIENT_ID": who, "REASON": "quota exceeded"})
            self._logged_at, self._unlogged = now, 0


class Limits:
    """The creation limits of one broker and their refusal counts."""

    def __init__(self) -> None:
        self.subscriptions = Refusals("subscription")
        self.connections = Refusals("connection")

    def subscription_refused(self, limit: int, session: Session, topic_filter: str) -> bool:
        """A new filter beyond `limit` (`mqtt.max_subscriptions_per_client`; replacing one
        is fine)."""
        if not limit or topic_filter in session.subscriptions \
                or len(session.subscriptions) < limit:
            return False
        self.subscriptions.refuse(f"client {session.client_id}", limit)
        return True

    def connection_refused(self, limit: int, live: Iterable[Connection], username: str | None,
                           client_id: str) -> bool:
        """One connection too many for `username` (`limit`: `mqtt.max_connections_per_user`);
        the client's own earlier connection, which this one takes over, does not count."""
        if not limit or username is None:
            return False
        count = sum(1 for c in live if c.username == username and c.client_id != client_id)
        if count < limit:
            return False
        self.connections.refuse(f"user {username}", limit)
        return True
