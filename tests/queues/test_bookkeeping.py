"""Random mixes of every operation: the counts the engine reports always match the disk."""

from __future__ import annotations

import logging
import random
import sqlite3

import pytest

from tests.queues.conftest import Harness, HarnessFactory, Worker, spec

KEYS = [None, "a", "b", "c"]
DISPATCH = ["round_robin", "least_inflight", "random", "sticky"]


def disk_totals(h: Harness, queue: str) -> tuple[int, int]:
    with sqlite3.connect(h.path) as conn:
        count, size = conn.execute("SELECT count(*), total(size) FROM queue_messages "
                                   "WHERE queue = ?", (queue,)).fetchone()
    return count, int(size)


def step(h: Harness, rng: random.Random, workers: list[Worker], subscribed: set[str]) -> None:
    action = rng.random()
    w = rng.choice(workers)
    if action < 0.5:
        key = rng.choice(KEYS)
        h.publish("t", b"x" * rng.randint(1, 40), settle=False,
                  user_property=[("k", key)] if key else None,
                  expires_at=h.clock.now + 3 if rng.random() < 0.05 else None)
    elif action < 0.7 and w.unacked:
        token = rng.choice(list(w.unacked))
        del w.unacked[token]
        (h.engine.ack if rng.random() < 0.8 else h.engine.reject)(w, token)
    elif action < 0.8:
        if w.client_id in subscribed:
            h.engine.detach(w)
            w.unacked.clear()
            subscribed.discard(w.client_id)
        else:
            h.engine.subscribe("$q/t", w, 1)
            subscribed.add(w.client_id)
    elif action < 0.9:
        h.clock.now += 1
        h.engine.tick(h.clock.now)
    elif action < 0.92:
        h.engine.purge("t")
    else:
        h.settle()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("overflow", ["drop_oldest", "reject_new", "block"])
def test_counts_match_the_disk_after_any_mix(make_engine: HarnessFactory, seed: int,
                                             overflow: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    # max_bytes: a user property counts its objects too (`Message.size`), ~240 bytes here
    h = make_engine(spec("t", last_value_key="user_property:k", max_messages=25,
                         max_bytes=2000, overflow=overflow, max_inflight=3, ack_timeout=4,
                         max_deliveries=4, dispatch=DISPATCH[seed % 4]),
                    window=4, budget=64 * 1024 * 1024 if seed % 2 else 600)
    workers = [Worker(f"w{i}", receive_maximum=rng.randint(1, 4)) for i in range(3)]
    subscribed: set[str] = set()
    with caplog.at_level(logging.WARNING):
        for i in range(600):
            step(h, rng, workers, subscribed)
            if i % 50 == 49:
                h.settle()
                stats = h.stats("t")
                assert (stats.depth, stats.bytes) == disk_totals(h, "t")
                assert stats.depth <= 25 and stats.bytes <= 2000
        for w in workers:
            h.engine.subscribe("$q/t", w, 1)
        h.ack_all(*workers)
    if h.stats("t").dead_lettered:
        dlq = h.stats("$dlq/t")
        assert (dlq.depth, dlq.bytes) == disk_totals(h, "$dlq/t")
        h.engine.purge("$dlq/t")
        h.settle()
    assert disk_totals(h, "t") == (0, 0)
    assert h.stats("t").depth == 0 and h.engine.memory_bytes == 0
    assert caplog.records == []
