"""A real queue engine over a real SQLite store in `tmp_path`, driven like the broker drives it.

`Harness` owns an event loop for the group-commit writer and runs it only while `settle()`
waits for every write and window read to finish, so tests read top to bottom as plain calls.
`Worker` is a consumer as a broker session would present one: a receive maximum, and the
deliveries it has been sent and not yet acknowledged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.config import QueueSpec, StorageSettings
from gateway.messages import Message
from gateway.queues import Delivery, PublishOutcome, QueueEngine
from gateway.store.committer import Committer
from gateway.store.db import migrate
from gateway.store.queues import QueueStore


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(eq=False)
class Worker:
    """A consumer: `unacked` is what it holds, `got` everything it was ever sent."""

    client_id: str
    receive_maximum: int = 100
    got: list[Delivery] = field(default_factory=list)
    unacked: dict[int, Delivery] = field(default_factory=dict)

    def queue_capacity(self) -> int:
        return self.receive_maximum - len(self.unacked)

    def queue_deliver(self, delivery: Delivery) -> None:
        self.got.append(delivery)
        if delivery.qos:
            self.unacked[delivery.token] = delivery

    @property
    def payloads(self) -> list[bytes]:
        return [d.message.payload for d in self.got]


class Harness:
    def __init__(self, path: Path, specs: list[QueueSpec], window: int, budget: int) -> None:
        self.path = path
        self.specs = specs
        self.settings = StorageSettings(queue_window=window, memory_budget=budget)
        self.clock = Clock()
        self.loop = asyncio.new_event_loop()
        self.engine = self._open()

    def _open(self) -> QueueEngine:
        self.committer = Committer(self.path, "normal", self.loop)
        migrate(self.committer.connection, self.path)
        self.store = QueueStore(self.committer)
        engine = QueueEngine(self.store, self.specs, self.settings, clock=self.clock)
        engine.load()
        self.settle()
        return engine

    def restart(self, specs: list[QueueSpec] | None = None) -> QueueEngine:
        """Stop cleanly and start a new engine over the same store."""
        self.settle()
        self.engine.flush()
        self.committer.close()
        if specs is not None:
            self.specs = specs
        self.engine = self._open()
        return self.engine

    def close(self) -> None:
        self.settle()
        self.engine.flush()
        self.committer.close()
        self.loop.close()

    def settle(self) -> None:
        """Run the loop until every write is committed and every window read answered."""
        async def drain() -> None:
            for _ in range(10_000):
                done = self.loop.create_future()
                self.committer.read(lambda _conn: None, done.set_result)
                await done
                # A transaction started by callbacks of the barrier's own batch shows only in
                # the committer's private flag (request: a public `busy`).
                if not self.store.busy and not self.committer.busy:
                    return
            raise AssertionError("the store never settled")
        self.loop.run_until_complete(drain())

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1,
                user_property: list[tuple[str, str]] | None = None, client_id: str = "prod",
                expires_at: float | None = None, settle: bool = True) -> PublishOutcome:
        data = payload.encode() if isinstance(payload, str) else payload
        props: Any = {"user_property": user_property} if user_property else {}
        outcome = self.engine.publish(Message(topic, data, qos, False, props, client_id,
                                              self.clock.now, expires_at))
        if settle:
            self.settle()
        return outcome

    def ack_all(self, *workers: Worker) -> None:
        """Each worker acknowledges everything it holds (and what arrives meanwhile)."""
        self.settle()
        while any(w.unacked for w in workers):
            for w in workers:
                for token in list(w.unacked):
                    del w.unacked[token]
                    self.engine.ack(w, token)
            self.settle()

    def rows(self, queue: str) -> list[tuple[Any, ...]]:
        """(payload, deliveries, lv_key) of the committed rows of `queue`, in queue order."""
        with sqlite3.connect(self.path) as conn:
            return conn.execute("SELECT payload, deliveries, lv_key FROM queue_messages "
                                "WHERE queue = ? ORDER BY id", (queue,)).fetchall()

    def stats(self, name: str) -> Any:
        return next(s for s in self.engine.stats() if s.name == name)


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[HarnessFactory]:
    """`make_engine(QueueSpec(...), ..., window=1000)` -> a loaded `Harness`."""
    made: list[Harness] = []

    def make(*specs: QueueSpec, window: int = 1000, budget: int = 64 * 1024 * 1024) -> Harness:
        h = Harness(tmp_path / "edgeq.db", list(specs), window, budget)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def spec(topic_filter: str, **fields: Any) -> QueueSpec:
    """A queue spec with test-friendly defaults."""
    return QueueSpec(filter=topic_filter, **fields)
