"""Hard limits at enqueue, the three overflow policies, TTL and message expiry."""

from __future__ import annotations

from tests.queues.conftest import HarnessFactory, Worker, spec


def test_drop_oldest_keeps_the_newest(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=3, overflow="drop_oldest"))
    for i in range(5):
        assert h.publish("t", str(i)).matched == 1
    assert [r[0] for r in h.rows("t")] == [b"2", b"3", b"4"]
    assert (h.stats("t").depth, h.stats("t").dropped) == (3, 2)


def test_drop_oldest_never_drops_what_is_in_flight(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=2, overflow="drop_oldest"))
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    h.publish("t", "a")
    h.publish("t", "b")
    outcome = h.publish("t", "c")  # both stored ones are in flight: the new one is dropped
    assert outcome.matched == 1 and outcome.reason == 0  # matched: the producer gets success
    assert [r[0] for r in h.rows("t")] == [b"a", b"b"]


def test_drop_oldest_by_bytes(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_bytes=30, overflow="drop_oldest"))
    for payload in ("a" * 9, "b" * 9, "c" * 9, "d" * 9):  # 10 bytes each with the topic
        h.publish("t", payload)
    assert [r[0] for r in h.rows("t")] == [b"b" * 9, b"c" * 9, b"d" * 9]
    assert h.stats("t").bytes == 30


def test_reject_new_answers_quota_exceeded_and_stores_nothing(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=2, overflow="reject_new"), spec("#", name="all"))
    h.publish("t", "1")
    h.publish("t", "2")
    outcome = h.publish("t", "3")
    assert (outcome.matched, outcome.reason, outcome.blocked) == (0, 0x97, None)
    assert [r[0] for r in h.rows("t")] == [b"1", b"2"]
    assert [r[0] for r in h.rows("all")] == [b"1", b"2"]  # all or nothing
    assert h.stats("t").rejected == 1


def test_block_pauses_the_producer_until_there_is_room(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=10, overflow="block"))
    for i in range(10):
        assert h.publish("t", str(i)).blocked is None
    outcome = h.publish("t", "10")
    assert outcome.blocked == "t" and outcome.matched == 0
    assert len(h.rows("t")) == 10
    woken: list[bool] = []
    h.engine.wait_for_room("t", lambda: woken.append(True))
    w = Worker("w", receive_maximum=1)
    h.engine.subscribe("$q/t", w, 1)
    h.ack_all(w)
    assert woken == [True]  # called back once the queue drained below 90 %
    assert h.publish("t", "10").matched == 1
    assert h.stats("t").blocked == 1


def test_block_never_loses_a_message_in_a_burst(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=50, overflow="block"), window=10)
    pending = [str(i) for i in range(500)]
    w = Worker("w", receive_maximum=5)
    h.engine.subscribe("$q/t", w, 1)
    while pending:  # the producer as the broker drives it: pause, wait, publish again
        outcome = h.publish("t", pending[0], settle=False)
        if outcome.blocked:
            h.engine.wait_for_room("t", lambda: None)
            h.ack_all(w)
        else:
            pending.pop(0)
        assert h.stats("t").depth <= 50
    h.ack_all(w)
    assert w.payloads == [str(i).encode() for i in range(500)]


def test_a_message_larger_than_max_bytes_is_refused(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_bytes=10, overflow="block"))
    assert h.publish("t", "x" * 20).reason == 0x97


def test_ttl_expires_messages_that_wait_too_long(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", ttl=60))
    h.publish("t", "old")
    h.clock.now += 30
    h.publish("t", "new")
    h.clock.now += 31
    h.engine.tick(h.clock.now)
    h.settle()
    assert [r[0] for r in h.rows("t")] == [b"new"]
    assert h.stats("t").expired == 1
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    assert w.payloads == [b"new"]


def test_expired_messages_are_never_delivered(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t"))
    h.publish("t", "short", expires_at=h.clock.now + 5)
    h.publish("t", "long", expires_at=h.clock.now + 500)
    h.publish("t", "forever")
    h.clock.now += 10  # no tick yet: dispatch itself checks
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    assert w.payloads == [b"long", b"forever"]
    assert h.publish("t", "dead", expires_at=h.clock.now - 1).matched == 0


def test_expired_messages_free_room_for_new_ones(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=1, ttl=10, overflow="reject_new"))
    h.publish("t", "a")
    assert h.publish("t", "b").reason == 0x97
    h.clock.now += 11
    assert h.publish("t", "b").matched == 1


def test_expiry_applies_to_messages_waiting_on_disk(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", ttl=60), window=4)
    for i in range(20):
        h.publish("t", str(i), settle=False)
    h.clock.now += 30
    for i in range(20, 25):
        h.publish("t", str(i), settle=False)
    h.settle()
    h.clock.now += 31
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    h.ack_all(w)
    assert w.payloads == [str(i).encode() for i in range(20, 25)]
    assert h.stats("t").expired == 20


def test_block_by_bytes_alone_wakes_the_producer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", max_messages=0, max_bytes=50, overflow="block"))
    for i in range(5):
        h.publish("t", "x" * 9 + str(i))
    assert h.publish("t", "y" * 10).blocked == "t"
    woken: list[bool] = []
    h.engine.wait_for_room("t", lambda: woken.append(True))
    w = Worker("w")
    h.engine.subscribe("$q/t", w, 1)
    h.ack_all(w)
    assert woken == [True]
