"""Failed-login throttling: what a CONNECT with a password may cost before it is hashed.

Two rules keep a flood of wrong passwords from locking everyone out (each argon2 verification
costs tens of milliseconds of a core):

* **Backoff per (source address, user name).** After `threshold` failures in a row for one user
  from one address, that pair is refused without hashing for `first_delay` seconds, doubling
  with each further failure up to `max_delay`; while backing off, at most one of its attempts
  is verified at a time. A success clears the pair; so does `forget_after` seconds without a
  failure. Keyed on the pair, not the address alone, so a user behind the same NAT address as
  an attacker still logs in (unless the attacker guesses *that* user's password).
* **Bounded pending work.** At most `pending_per_user` verifications wait or run per (address,
  user), `pending_per_address` per address and `pending_total` in all; beyond that a CONNECT is
  refused as busy, without hashing. One address cannot queue hundreds of hashes ahead of
  everyone else's, and one user's flood leaves room for the other users of its address.

Pure logic: the clock is injected; nothing here hashes, sleeps, logs or touches a socket.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED = 10_000  # (address, user) pairs remembered; idle ones are forgotten beyond this


class Verdict(enum.Enum):
    """What to do with one CONNECT's credentials."""

    VERIFY = "verify"  # hash it now, then report with `finished()`
    THROTTLED = "throttled"  # refuse as a bad password, without hashing: the pair backs off
    BUSY = "busy"  # refuse as server busy, without hashing: too much verification pending


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    threshold: int = 5
    first_delay: float = 1.0
    max_delay: float = 60.0
    forget_after: float = 600.0
    pending_per_user: int = 2
    pending_per_address: int = 16
    pending_total: int = 32


@dataclass(slots=True)
class _Pair:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0
    pending: int = 0


@dataclass(slots=True)
class ThrottleCounts:
    """Totals since start-up, for `$SYS` and Prometheus."""

    failed: int = 0  # verified and wrong
    throttled: int = 0  # refused while backing off
    busy: int = 0  # refused because too many verifications were pending


class LoginThrottle:
    """`admit()` before hashing a password, `finished()` after; see the module docstring."""

    def __init__(self, settings: ThrottleSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or ThrottleSettings()
        self.clock = clock
        self.counts = ThrottleCounts()
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._pending: dict[str, int] = {}
        self._pending_total = 0

    def admit(self, address: str, username: str) -> Verdict:
        """Whether to verify this attempt now; VERIFY reserves a place until `finished()`."""
        now = self.clock()
        pair = self._pairs.get((address, username))
        if pair is not None and self._backing_off(pair, now):
            self.counts.throttled += 1
            return Verdict.THROTTLED
        if ((pair is not None and pair.pending >= self.settings.pending_per_user)
                or self._pending.get(address, 0) >= self.settings.pending_per_address
                or self._pending_total >= self.settings.pending_total):
            self.counts.busy += 1
            return Verdict.BUSY
        if pair is None:
            self._make_room(now)
            pair = self._pairs[(address, username)] = _Pair()
        pair.pending += 1
        self._pending[address] = self._pending.get(address, 0) + 1
        self._pending_total += 1
        return Verdict.VERIFY

    def finished(self, address: str, username: str, ok: bool) -> float:
        """Report an admitted attempt; the seconds this pair is now refused for (0: none)."""
        key = (address, username)
        pair = self._pairs[key]
        pair.pending -= 1
        self._pending_total -= 1
        left = self._pending[address] - 1
        if left:
            self._pending[address] = left
        else:
            del self._pending[address]
        if ok:
            pair.failures, pair.blocked_until = 0, 0.0
            if not pair.pending:
                del self._pairs[key]
            return 0.0
        return self._failure(pair)

    def failed_alongside(self, address: str, username: str) -> float:
        """An attempt that shared another's verification (same credentials) and was wrong:
        counted and backed off like any failure. The seconds this pair is now refused for."""
        key = (address, username)
        pair = self._pairs.get(key)
        if pair is None:
            self._make_room(self.clock())
            pair = self._pairs[key] = _Pair()
        return self._failure(pair)

    def _failure(self, pair: _Pair) -> float:
        self.counts.failed += 1
        now = self.clock()
        pair.failures += 1
        pair.last_failure = now
        over = pair.failures - self.settings.threshold
        if over < 0:
            return 0.0
        delay = min(self.settings.max_delay, self.settings.first_delay * 2.0 ** min(over, 32))
        pair.blocked_until = now + delay
        return delay

    def _backing_off(self, pair: _Pair, now: float) -> bool:
        if now - pair.last_failure > self.settings.forget_after:
            pair.failures = 0
        if pair.failures < self.settings.threshold:
            return False
        return now < pair.blocked_until or pair.pending > 0

    def _make_room(self, now: float) -> None:
        """Forget idle pairs once MAX_TRACKED are remembered (oldest first when none is idle)."""
        if len(self._pairs) < MAX_TRACKED:
            return
        quiet = [k for k, p in self._pairs.items() if not p.pending]
        idle = [k for k in quiet
                if now - self._pairs[k].last_failure > self.settings.forget_after]
        for key in idle or quiet[:MAX_TRACKED // 10]:
            del self._pairs[key]

    def tracked(self) -> int:
        """How many (address, user) pairs are remembered."""
        return len(self._pairs)
