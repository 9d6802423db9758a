"""Who may connect: anonymous access on or off, and user names checked against the password file.

The rules follow Mosquitto's, so users find what they expect:

* no user name: accepted when `allow_anonymous`, else NOT_AUTHORIZED;
* a user name and a password file: accepted only with the right password, else BAD_CREDENTIALS
  (also for unknown users; `allow_anonymous` does not let a wrong password in);
* a user name and no password file: the name is taken on trust when `allow_anonymous` (ACL
  `user` sections then match unverified names), else NOT_AUTHORIZED.

`AuthOutcome` is not a reason code; the broker maps it in its reason-code table (CONNACK 0x00 /
0x86 / 0x87 in MQTT 5.0, 0x00 / 0x04 / 0x05 in 3.1.1). `authenticate()` blocks for the argon2
verification: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import enum
from pathlib import Path

from gateway.auth.passwords import load_password_file, verify_password


class AuthOutcome(enum.Enum):
    """The answer to a CONNECT's credentials."""

    ACCEPTED = "accepted"
    BAD_CREDENTIALS = "bad user name or password"  # 5.0: 0x86, 3.1.1: 0x04
    NOT_AUTHORIZED = "not authorized"  # 5.0: 0x87, 3.1.1: 0x05


class Authenticator:
    """Holds `allow_anonymous` and the users of the password file (if any).

    A config reload that changes `allow_anonymous` or the file's path builds a new
    Authenticator; `reload()` re-reads the same file (SIGHUP after `edgeq passwd`)."""

    def __init__(self, *, allow_anonymous: bool, password_file: Path | str | None) -> None:
        """Reads the password file now; raises `PasswordFileError` when it is unreadable or bad.
        An empty string for `password_file` means none (the config default)."""
        self.allow_anonymous = allow_anonymous
        self.password_file = Path(password_file) if password_file else None
        self._users: dict[str, str] = {}
        self.reload()

    @property
    def users(self) -> frozenset[str]:
        """The user names in the password file."""
        return frozenset(self._users)

    def reload(self) -> None:
        """Re-read the password file. On error the previous users stay in force and the
        `PasswordFileError` propagates, for the caller to log."""
        if self.password_file is None:
            return
        self._users = load_password_file(self.password_file)

    def authenticate(self, username: str | None, password: str | bytes | None) -> AuthOutcome:
        """The outcome for a CONNECT with these credentials (blocking: argon2)."""
        if username is None:
            return AuthOutcome.ACCEPTED if self.allow_anonymous else AuthOutcome.NOT_AUTHORIZED
        if self.password_file is None:
            return AuthOutcome.ACCEPTED if self.allow_anonymous else AuthOutcome.NOT_AUTHORIZED
        if password is not None and verify_password(self._users, username, password):
            return AuthOutcome.ACCEPTED
        return AuthOutcome.BAD_CREDENTIALS
