"""Authentication and authorisation decisions for the broker, over `gateway.auth`.

Anonymous access on/off, the password file and the ACL file; `reload()` re-reads both
(SIGHUP) without touching connected clients. A reload with a broken file keeps the previous
users and rules in force and logs why.
"""

from __future__ import annotations

import logging

from gateway.auth import Acl, AclError, Authenticator, AuthOutcome, PasswordFileError, load_acl
from gateway.config import AuthSettings
from gateway.mqtt.reasons import Reason

log = logging.getLogger(__name__)

_CONNACK = {
    AuthOutcome.ACCEPTED: 0,
    AuthOutcome.BAD_CREDENTIALS: Reason.BAD_USER_NAME_OR_PASSWORD,
    AuthOutcome.NOT_AUTHORIZED: Reason.NOT_AUTHORIZED,
}


class Access:
    def __init__(self, settings: AuthSettings) -> None:
        """Raises PasswordFileError / AclError (messages name file and line) at startup."""
        self.settings = settings
        self.authenticator, self.acl = self._load(settings)

    @staticmethod
    def _load(settings: AuthSettings) -> tuple[Authenticator, Acl]:
        return (Authenticator(allow_anonymous=settings.allow_anonymous,
                              password_file=settings.password_file),
                load_acl(settings.acl_file))

    def reload(self, settings: AuthSettings | None = None) -> None:
        settings = settings or self.settings
        try:
            self.authenticator, self.acl = self._load(settings)
        except (PasswordFileError, AclError) as e:
            log.error("auth reload refused, keeping the previous users and rules: %s", e)
            return
        self.settings = settings

    def is_slow(self, username: str | None, password: bytes | None) -> bool:
        """Whether `authenticate` will hash a password (run it off the event loop then)."""
        return (username is not None and password is not None
                and self.authenticator.password_file is not None)

    def authenticate(self, username: str | None, password: bytes | None, client_id: str) -> int:
        """0, or the CONNACK reason code refusing the client. Blocks ~tens of ms (argon2)."""
        return _CONNACK[self.authenticator.authenticate(username, password)]

    def can_publish(self, username: str | None, client_id: str, topic: str) -> bool:
        return self.acl.can_publish(username, client_id, topic)

    def can_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        return self.acl.can_subscribe(username, client_id, topic_filter)

    def can_consume(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        """`topic_filter` is the consumer's `$q/...` or `$queue/...` subscription."""
        return self.acl.can_consume(username, client_id, topic_filter)
