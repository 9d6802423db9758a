"""The failed-login throttle as plain calls with a settable clock."""

from __future__ import annotations

from gateway.auth.throttle import MAX_TRACKED, LoginThrottle, ThrottleSettings, Verdict

VERIFY, THROTTLED, BUSY = Verdict.VERIFY, Verdict.THROTTLED, Verdict.BUSY


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(t: LoginThrottle, address: str = "10.0.0.9", user: str = "alice") -> float:
    assert t.admit(address, user) is VERIFY
    return t.finished(address, user, ok=False)


def make(**settings: float) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    return LoginThrottle(ThrottleSettings(**settings), clock), clock  # type: ignore[arg-type]


def test_backoff_starts_at_the_threshold_and_doubles_up_to_the_cap() -> None:
    t, clock = make(threshold=3, first_delay=1.0, max_delay=4.0)
    assert [fail(t) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert t.admit("10.0.0.9", "alice") is THROTTLED
    clock.now += 1.01
    assert [fail(t)] == [2.0]
    clock.now += 2.01
    assert fail(t) == 4.0
    clock.now += 4.01
    assert fail(t) == 4.0
    assert (t.counts.failed, t.counts.throttled) == (6, 1)


def test_other_users_and_other_addresses_are_not_throttled() -> None:
    t, _ = make(threshold=2)
    fail(t)
    fail(t)
    assert t.admit("10.0.0.9", "alice") is THROTTLED
    assert t.admit("10.0.0.9", "bob") is VERIFY
    assert t.admit("10.0.0.7", "alice") is VERIFY


def test_a_success_clears_the_failures() -> None:
    t, _ = make(threshold=2)
    fail(t)
    assert t.admit("10.0.0.9", "alice") is VERIFY
    assert t.finished("10.0.0.9", "alice", ok=True) == 0.0
    assert fail(t) == 0.0  # counting starts again
    assert t.tracked() == 1


def test_failures_are_forgotten_after_a_quiet_period() -> None:
    t, clock = make(threshold=2, forget_after=60.0)
    fail(t)
    fail(t)
    clock.now += 61
    assert fail(t) == 0.0


def test_while_backing_off_one_attempt_at_a_time_is_verified() -> None:
    t, clock = make(threshold=1, first_delay=1.0)
    fail(t)
    clock.now += 1.01
    assert t.admit("10.0.0.9", "alice") is VERIFY
    assert t.admit("10.0.0.9", "alice") is THROTTLED  # the first one is still being hashed
    assert t.finished("10.0.0.9", "alice", ok=True) == 0.0
    assert t.admit("10.0.0.9", "alice") is VERIFY


def test_a_success_while_another_attempt_is_pending_clears_the_count() -> None:
    t, _ = make(threshold=3)
    fail(t)
    fail(t)
    assert [t.admit("10.0.0.9", "alice"), t.admit("10.0.0.9", "alice")] == [VERIFY, VERIFY]
    t.finished("10.0.0.9", "alice", ok=True)
    assert t.finished("10.0.0.9", "alice", ok=False) == 0.0  # 1 failure since the success


def test_pending_verifications_are_capped_per_user_per_address_and_in_all() -> None:
    t, _ = make(pending_per_user=2)
    assert [t.admit("10.0.0.9", "alice") for _ in range(3)] == [VERIFY, VERIFY, BUSY]
    assert t.admit("10.0.0.9", "bob") is VERIFY
    t, _ = make(pending_per_address=2, pending_total=3)
    assert [t.admit("10.0.0.9", f"u{i}") for i in range(3)] == [VERIFY, VERIFY, BUSY]
    assert t.admit("10.0.0.8", "x") is VERIFY
    assert t.admit("10.0.0.7", "y") is BUSY  # three pending in all
    t.finished("10.0.0.9", "u0", ok=False)
    assert t.admit("10.0.0.7", "y") is VERIFY
    assert t.counts.busy == 2


def test_memory_stays_bounded_under_a_flood_of_user_names() -> None:
    t, _ = make(pending_per_address=1)
    for i in range(MAX_TRACKED + 500):
        fail(t, user=f"user-{i}")
    assert t.tracked() <= MAX_TRACKED
