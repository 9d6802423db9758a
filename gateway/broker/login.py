"""Password checks for CONNECT (and admin Basic auth): throttled, bounded, logged and counted.

Hashing a password (argon2) costs tens of milliseconds of a core, so it runs on a small
executor of its own (`WORKERS` threads), never on the event loop nor on the default executor
that other work shares. Before hashing, `gateway.auth.throttle` decides: a (source address, user)
pair that keeps failing is refused without a hash for a growing time, and one address cannot
have more than a few verifications pending. Every failed login is logged (address, user name,
client id; never the password; control characters escaped by the log handler) and counted
for `$SYS` and Prometheus.

Credentials already verified are remembered (a keyed digest, never the password, until the
next reload), and concurrent checks of the same credentials share one hash: a fleet of
devices reconnecting at once with one user name costs one verification, not one each, and a
flood of wrong passwords cannot lock out a password that is known to be right.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from gateway.auth.throttle import LoginThrottle, Verdict
from gateway.mqtt.reasons import Reason

if TYPE_CHECKING:
    from gateway.broker.access import Access
    from gateway.broker.connection import Connection
    from gateway.mqtt.packets import Connect

log = logging.getLogger("gateway.login")
WORKERS = 2
REFUSALS: dict[int, str] = {Reason.NOT_AUTHORIZED: "not authorised",
            Reason.SERVER_BUSY: "too many logins pending from this address; retry later"}


KNOWN_LIMIT = 10_000  # verified credentials remembered before the memory starts over
Key = tuple[str, bytes]


class Logins:
    """One broker's password checks: its access (the password file), throttle,
    password-hashing executor, verified credentials and checks in progress."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.throttle = LoginThrottle()
        self.executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="edgeq-login")
        self._secret = secrets.token_bytes(32)
        self._known: set[Key] = set()
        self._generation = -1
        self.pending: dict[Key, asyncio.Future[int]] = {}

    def key(self, username: str, password: bytes) -> Key:
        return username, hashlib.blake2b(password, key=self._secret).digest()

    def known(self, key: Key, generation: int) -> bool:
        """Whether these credentials were verified under the current password file."""
        if generation != self._generation:
            self._generation = generation
            self._known.clear()
        return key in self._known

    def remember(self, key: Key, generation: int) -> None:
        """Remember credentials verified under password file `generation` (if still current)."""
        if generation != self._generation:  # the password file was reloaded meanwhile
            return
        if len(self._known) >= KNOWN_LIMIT:
            self._known.clear()
        self._known.add(key)


    def check(self, conn: Connection, p: Connect, client_id: str,
              then: Callable[[int], None]) -> int | None:
        """The CONNECT's authentication: its reason code (0: accepted) when it is known at
        once, or None when a password is being verified and `then(reason)` will be called
        later (the connection is blocked until then)."""
        access = self.access
        if not access.is_slow(p.username, p.password):
            reason = access.authenticate(p.username, p.password, client_id)
            if reason:
                _log_failure(address_of(conn.peer), p.username, client_id, reason, 0.0)
            return reason
        address, username = address_of(conn.peer), p.username or ""
        key = self.key(username, p.password or b"")
        if self.known(key, access.generation):
            return 0
        pending = self.pending.get(key)
        if pending is not None:
            conn.block()
            pending.add_done_callback(
                lambda done: then(self._alongside(address, username, client_id, done.result())))
            return None
        verdict = self.throttle.admit(address, username)
        if verdict is Verdict.THROTTLED:
            return Reason.BAD_USER_NAME_OR_PASSWORD
        if verdict is Verdict.BUSY:
            return Reason.SERVER_BUSY
        conn.block()
        pending = self._verify(address, username, p.password, client_id)
        pending.add_done_callback(lambda done: then(done.result()))
        return None

    def _alongside(self, address: str, username: str, client_id: str, reason: int) -> int:
        """The outcome of an attempt that waited for the same credentials' verification."""
        if reason == Reason.BAD_USER_NAME_OR_PASSWORD:
            delay = self.throttle.failed_alongside(address, username)
            _log_failure(address, username, client_id, reason, delay)
        return reason

    async def verify(self, address: str, username: str, password: bytes, what: str) -> bool:
        """True when `password` is `username`'s: throttled and hashed off the loop like a
        CONNECT (`what` stands for the client id in the log line, e.g. "admin API")."""
        if self.known(self.key(username, password), self.access.generation):
            return True
        if self.throttle.admit(address, username) is not Verdict.VERIFY:
            return False
        # shielded: a caller that goes away does not leave the throttle's place taken
        return await asyncio.shield(self._verify(address, username, password, what)) == 0

    def _verify(self, address: str, username: str, password: bytes | None,
                client_id: str) -> asyncio.Future[int]:
        """Hash on the login executor (the throttle admitted it); report, log, remember, and
        resolve to the reason code on the event loop. Same-credential checks wait on this
        one."""
        loop = asyncio.get_running_loop()
        hashed = loop.run_in_executor(self.executor, self.access.authenticate, username,
                                      password, client_id)
        answer: asyncio.Future[int] = loop.create_future()
        key = self.key(username, password or b"")
        generation = self.access.generation
        self.pending[key] = answer

        def verified(done: asyncio.Future[int]) -> None:
            error = done.exception()
            reason = Reason.UNSPECIFIED_ERROR if error is not None else done.result()
            delay = self.throttle.finished(address, username, ok=reason == 0)
            if error is not None:
                log.error("password check failed: %r", error)
            elif reason:
                _log_failure(address, username, client_id, reason, delay)
            else:
                self.remember(key, generation)
            self.pending.pop(key, None)
            answer.set_result(reason)

        hashed.add_done_callback(verified)
        return answer

    def counts(self) -> dict[str, int]:
        """The login figures of `$SYS/broker/logins/...`."""
        c = self.throttle.counts
        return {"logins/failed": c.failed, "logins/throttled": c.throttled,
                "logins/busy": c.busy}


def address_of(peer: str) -> str:
    """The host part of a `host:port` peer name (IPv6 too)."""
    host, sep, _port = peer.rpartition(":")
    return host if sep else peer


def _log_failure(address: str, username: str | None, client_id: str, reason: int,
                 delay: float) -> None:
    who = "anonymous client" if username is None else f"user {username}"
    backoff = f"; further attempts refused for {delay:g} s" if delay else ""
    text = REFUSALS.get(reason, "bad user name or password")
    log.warning("login failed: %s from %s (client id %s): %s%s", who, address, client_id,
                text, backoff, extra={"CLIENT_ID": client_id, "REASON": text})
