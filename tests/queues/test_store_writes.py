"""What the queue store writes: buffered rows per transaction, and a store that does not grow
with last-value updates."""

from __future__ import annotations

import sqlite3

from tests.queues.conftest import HarnessFactory, Worker, spec


def test_a_message_acknowledged_before_its_transaction_is_never_written(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs/#"))
    w = Worker("w1")
    h.engine.subscribe("$q/jobs/#", w, 1)
    before = h.committer.connection.total_changes
    acked: list[bool] = []
    h.publish("jobs/1", b"work", settle=False)
    h.committer.on_commit(acked.append)
    assert [d.message.payload for d in w.got] == [b"work"]
    assert acked == []  # the producer's acknowledgement waits for the next transaction
    token = next(iter(w.unacked))
    del w.unacked[token]
    h.engine.ack(w, token)
    h.settle()
    assert acked == [True]
    assert h.committer.connection.total_changes == before  # no insert, no delete
    assert h.rows("jobs/#") == []


def test_a_delivery_before_the_transaction_is_counted_in_the_inserted_row(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs/#"))
    w = Worker("w1")
    h.engine.subscribe("$q/jobs/#", w, 1)
    h.publish("jobs/1", b"a", settle=False)
    h.publish("jobs/2", b"b")
    assert h.rows("jobs/#") == [(b"a", 1, None), (b"b", 1, None)]
    h.engine.detach(w)
    h.settle()
    assert h.rows("jobs/#") == [(b"a", 1, None), (b"b", 1, None)]


def test_a_batch_of_inserts_and_deletes_lands_whole(make_engine: HarnessFactory) -> None:
    """More rows than the largest multi-row INSERT, some acknowledged after their commit."""
    h = make_engine(spec("jobs/#"))
    for i in range(150):
        h.publish(f"jobs/{i}", str(i), settle=False)
    h.settle()
    assert [r[0] for r in h.rows("jobs/#")] == [str(i).encode() for i in range(150)]
    w = Worker("w1", receive_maximum=1000)
    h.engine.subscribe("$q/jobs/#", w, 1)
    for _ in range(77):  # in queue order, while more are dispatched as room opens
        token = next(iter(w.unacked))
        del w.unacked[token]
        h.engine.ack(w, token)
    h.settle()
    assert [r[0] for r in h.rows("jobs/#")] == [str(i).encode() for i in range(77, 150)]
    h.restart()
    assert h.stats("jobs/#").depth == 73


def test_a_last_value_queue_grows_with_its_keys_not_its_updates(
        make_engine: HarnessFactory) -> None:
    keys = 1000
    h = make_engine(spec("state/+", last_value_key="topic_level:1"))

    def update(rounds: int) -> int:
        for r in range(rounds):
            for k in range(keys):
                h.publish(f"state/k{k}", b"v" * 64 + str(r).encode(), settle=False)
            h.settle()
        with sqlite3.connect(h.path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return int(conn.execute("PRAGMA page_count").fetchone()[0])

    after_n = update(3)
    after_10n = update(30)
    assert h.stats("state/+").depth == keys
    assert len(h.rows("state/+")) == keys
    assert after_10n <= after_n + 8, (after_n, after_10n)
