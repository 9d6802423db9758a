"""Dispatch strategies: which consumer of a queue gets the next message.

Each strategy picks among the queue's members that have room (their window is
min(queue max_inflight, the consumer's free receive-maximum slots)) and returns None when
nobody can take the message now. A message a consumer rejected (`Entry.avoid`) goes to another
member whenever the queue has one.

- round_robin: members in turn.
- least_inflight: the member with the fewest unacknowledged messages (ties rotate).
- random: uniformly among members with room.
- sticky: the same key (the last-value key if the queue has one, else the topic) goes to the
  same member while it stays subscribed, so per-key order holds across a worker pool. A
  message its member rejected moves the key to another member, if there is one.

A strategy is a class registered under its config name with `@register`; `make_strategy` builds
one by name. One that keeps per-key order sets `per_key`, so that a queue's dispatch skips past a
key whose member is full instead of stopping there. The names must match the `dispatch` choices
of `QueueSpec` in gateway/config.py (tests/queues/test_dispatch.py checks it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol, TypeVar

from gateway.queues.model import Entry, Member

STICKY_MAX_KEYS = 65_536


class Strategy(Protocol):
    name: str
    per_key: bool

    def pick(self, members: list[Member], max_inflight: int, entry: Entry) -> Member | None:
        ...

    def forget(self, member: Member) -> None:
        ...


S = TypeVar("S", bound=Strategy)
STRATEGIES: dict[str, Callable[[], Strategy]] = {}


def register(cls: type[S]) -> type[S]:
    """Class decorator: `dispatch = "<cls.name>"` selects this strategy."""
    STRATEGIES[cls.name] = cls
    return cls


def _excluded(members: list[Member], entry: Entry) -> Member | None:
    """The member a rejected message should avoid, if the queue has another active one."""
    avoid = entry.avoid
    if avoid is None:
        return None
    for m in members:
        if m is not avoid and m.active:
            return avoid
    return None


@register
class RoundRobin:
    name = "round_robin"
    per_key = False

    def __init__(self) -> None:
        self._next = 0

    def pick(self, members: list[Member], max_inflight: int, entry: Entry) -> Member | None:
        n = len(members)
        exclude = _excluded(members, entry)
        start = self._next
        for i in range(n):
            m = members[(start + i) % n]
            if m is not exclude and m.can_take(entry) and m.has_room(max_inflight):
                self._next = (start + i + 1) % n
                return m
        return None

    def forget(self, member: Member) -> None:
        self._next = 0


@register
class LeastInflight:
    name = "least_inflight"
    per_key = False

    def __init__(self) -> None:
        self._start = 0

    def pick(self, members: list[Member], max_inflight: int, entry: Entry) -> Member | None:
        n = len(members)
        exclude = _excluded(members, entry)
        best: Member | None = None
        best_n = max_inflight
        start = self._start = (self._start + 1) % n if n else 0
        for i in range(n):
            m = members[(start + i) % n]
            if m is exclude or not m.active or not m.can_take(entry):
                continue
            count = len(m.inflight) if m.qos else 0
            if count < best_n and m.consumer.queue_capacity() > 0:
                best, best_n = m, count
                if count == 0:
                    break
        return best

    def forget(self, member: Member) -> None:
        self._start = 0


@register
class Random:
    name = "random"
    per_key = False

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, members: list[Member], max_inflight: int, entry: Entry) -> Member | None:
        exclude = _excluded(members, entry)
        room = [m for m in members
                if m is not exclude and m.can_take(entry) and m.has_room(max_inflight)]
        return self._rng.choice(room) if room else None

    def forget(self, member: Member) -> None:
        pass


@register
class Sticky:
    """Keys are bound to members on first sight (least in flight wins) and kept there."""

    name = "sticky"
    per_key = True

    def __init__(self) -> None:
        self._owner: dict[str, Member] = {}
        self._least = LeastInflight()

    def pick(self, members: list[Member], max_inflight: int, entry: Entry) -> Member | None:
        key = sticky_key(entry)
        owner = self._owner.get(key)
        # A key moves when its consumer rejected this message and another one can take it.
        if (owner is not None and owner.active and owner.can_take(entry)
                and owner is not _excluded(members, entry)):
            return owner if owner.has_room(max_inflight) else None
        chosen = self._least.pick(members, max_inflight, entry)
        if chosen is not None:
            if len(self._owner) >= STICKY_MAX_KEYS:
                self._prune()
            self._owner[key] = chosen
        return chosen

    def forget(self, member: Member) -> None:
        self._owner = {k: m for k, m in self._owner.items() if m is not member}

    def _prune(self) -> None:
        """Forget keys with nothing in flight: they can move without breaking their order."""
        busy = {sticky_key(e) for m in set(self._owner.values()) for e in m.inflight.values()}
        self._owner = {k: m for k, m in self._owner.items() if k in busy}


def sticky_key(entry: Entry) -> str:
    if entry.lv_key is not None:
        return entry.lv_key
    return entry.message.topic if entry.message is not None else ""


def make_strategy(name: str) -> Strategy:
    factory = STRATEGIES.get(name)
    if factory is None:
        raise ValueError(f"unknown dispatch strategy {name!r}")
    return factory()
