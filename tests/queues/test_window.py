"""Messages live on disk; RAM holds a bounded window that refills in order; restarts recover."""

from __future__ import annotations

from gateway.messages import Message
from tests.queues.conftest import HarnessFactory, Worker, spec


def test_window_refills_from_disk_in_order(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_inflight=7), window=10)
    for i in range(100):
        h.publish("t", f"{i:03}", settle=False)
    h.settle()
    assert h.stats("t").depth == 100
    assert h.engine.memory_bytes <= 10 * (200 + 4)
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    h.ack_all(w)
    assert w.payloads == [f"{i:03}".encode() for i in range(100)]
    assert h.rows("t") == [] and h.stats("t").depth == 0
    assert h.engine.memory_bytes == 0


def test_publishing_while_the_window_refills_keeps_order(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_inflight=3), window=4)
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    for i in range(60):
        h.publish("t", f"{i:03}", settle=False)
        if i % 7 == 0:  # the consumer acknowledges now and then, mid-burst
            for token in list(w.unacked):
                del w.unacked[token]
                h.engine.ack(w, token)
    h.ack_all(w)
    assert w.payloads == [f"{i:03}".encode() for i in range(60)]


def test_memory_stays_bounded_with_a_large_backlog(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=0), window=50)
    payload = b"x" * 1000
    for _ in range(3000):
        h.publish("t", payload, settle=False)
    h.settle()
    assert h.stats("t").depth == 3000
    assert h.stats("t").bytes == 3000 * 1001
    assert h.engine.memory_bytes < 50 * 1300
    assert h.engine.backlog == 3000


def test_memory_budget_limits_windows(make_engine: HarnessFactory) -> None:
    specs = [spec(f"q{i}") for i in range(10)]
    h = make_engine(*specs, window=100, budget=100_000)  # windows get half: 50 kB
    for i in range(10):
        for _ in range(100):
            h.publish(f"q{i}", b"x" * 500, settle=False)
    h.settle()
    assert h.engine.memory_bytes <= 50_000 + 700
    assert h.engine.backlog == 1000
    w = Worker("w", receive_maximum=1000)
    h.engine.subscribe("$q/q9", w, 1)
    h.ack_all(w)
    assert len(w.got) == 100


def test_restart_recovers_depth_order_and_bytes(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t"), window=10)
    w = Worker("w", receive_maximum=3)
    h.engine.subscribe("$q/t", w, 1)
    for i in range(50):
        h.publish("t", f"{i:02}", settle=False)
    h.settle()
    token = w.got[0].token
    del w.unacked[token]
    h.engine.ack(w, token)  # "00" consumed; "01".."03" in flight when the broker stops
    engine = h.restart()
    stats = h.stats("t")
    assert (stats.depth, stats.bytes) == (49, 49 * 3)
    again = Worker("again")
    engine.subscribe("$q/t", again, 1)
    h.ack_all(again)
    assert again.payloads == [f"{i:02}".encode() for i in range(1, 50)]
    assert [d.dup for d in again.got[:4]] == [True, True, True, False]


def test_start_up_reads_only_a_window(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t"), window=20)
    for i in range(500):
        h.publish("t", str(i), settle=False)
    h.restart()
    assert h.engine.backlog == 500
    assert h.engine.memory_bytes <= 20 * (200 + 4)


def test_the_retain_flag_is_kept_on_disk(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t"))
    h.engine.publish(Message("t", b"state", 1, True, {}, "prod", h.clock.now))
    h.publish("t", "plain")
    engine = h.restart()
    w = Worker("w")
    engine.subscribe("$q/t", w, 1)
    h.settle()
    assert [(d.message.payload, d.message.retain) for d in w.got] == [
        (b"state", True), (b"plain", False)]
