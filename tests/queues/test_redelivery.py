"""Redelivery with DUP (disconnect, acknowledgement timeout, reject) and dead-lettering."""

from __future__ import annotations

import sqlite3

from tests.queues.conftest import HarnessFactory, Worker, spec


def test_disconnect_returns_in_flight_messages_to_the_head_with_dup(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", max_inflight=2))
    crashed, survivor = Worker("crashed"), Worker("survivor", receive_maximum=0)
    h.engine.subscribe("$q/jobs", crashed, 1)
    h.engine.subscribe("$q/jobs", survivor, 1)
    for i in range(4):
        h.publish("jobs", str(i))
    assert crashed.payloads == [b"0", b"1"]
    h.engine.detach(crashed)  # socket closed without PUBACK
    survivor.receive_maximum = 10
    h.engine.consumer_ready(survivor)
    h.ack_all(survivor)
    assert survivor.payloads == [b"0", b"1", b"2", b"3"]
    assert [d.dup for d in survivor.got] == [True, True, False, False]
    assert h.stats("jobs").redelivered == 2


def test_a_message_waits_for_the_next_consumer_when_the_last_one_leaves(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs"))
    first = Worker("first")
    h.engine.subscribe("$q/jobs", first, 1)
    h.publish("jobs", "x")
    h.engine.detach(first)
    assert h.stats("jobs").lag_messages == 1
    second = Worker("second")
    h.engine.subscribe("$q/jobs", second, 1)
    assert second.got[0].message.payload == b"x" and second.got[0].dup


def test_ack_timeout_redelivers_to_a_live_consumer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", ack_timeout=30))
    stuck, other = Worker("stuck"), Worker("other", receive_maximum=0)
    h.engine.subscribe("$q/jobs", stuck, 1)
    h.engine.subscribe("$q/jobs", other, 1)
    h.publish("jobs", "x")
    other.receive_maximum = 10
    h.clock.now += 29
    h.engine.tick(h.clock.now)
    assert other.got == []
    h.clock.now += 2
    h.engine.tick(h.clock.now)
    assert other.payloads == [b"x"] and other.got[0].dup
    h.engine.ack(stuck, stuck.got[0].token)  # the late acknowledgement is ignored
    assert h.stats("jobs").depth == 1
    h.ack_all(other)
    assert h.stats("jobs").depth == 0


def test_a_rejected_message_goes_to_another_consumer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", dispatch="round_robin"))
    picky, willing = Worker("picky"), Worker("willing")
    h.engine.subscribe("$q/jobs", picky, 1)
    h.engine.subscribe("$q/jobs", willing, 1)
    h.publish("jobs", "x")
    assert picky.payloads == [b"x"]
    token = picky.got[0].token
    del picky.unacked[token]
    h.engine.reject(picky, token)
    assert willing.payloads == [b"x"] and willing.got[0].dup
    assert h.stats("jobs").nacked == 1


def test_a_rejected_message_returns_to_the_only_consumer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", max_deliveries=0))
    only = Worker("only")
    h.engine.subscribe("$q/jobs", only, 1)
    h.publish("jobs", "x")
    token = only.got[0].token
    del only.unacked[token]
    h.engine.reject(only, token)
    assert only.payloads == [b"x", b"x"]


def test_poison_message_moves_to_the_dead_letter_queue(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", name="orders", max_deliveries=3))
    w = Worker("w")
    h.engine.subscribe("$queue/orders", w, 1)
    h.publish("jobs", "poison")
    for _ in range(3):
        token = w.got[-1].token
        del w.unacked[token]
        h.engine.reject(w, token)
    h.settle()
    assert w.payloads == [b"poison"] * 3
    assert h.rows("orders") == []
    assert [r[0] for r in h.rows("$dlq/orders")] == [b"poison"]
    assert h.stats("orders").dead_lettered == 1
    dlq = h.stats("$dlq/orders")
    assert (dlq.kind, dlq.depth) == ("dead_letter", 1)
    reader = Worker("reader")
    assert h.engine.subscribe("$queue/$dlq/orders", reader, 1) == 0
    assert reader.got[0].message.topic == "jobs"
    sample = h.engine.show("orders")["dead_letter"]["sample"]
    assert sample == []  # in flight to the reader now, not waiting


def test_dead_letter_queue_of_a_filter_named_queue(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("images/+", max_deliveries=1))
    w = Worker("w")
    h.engine.subscribe("$q/images/+", w, 1)
    h.publish("images/a", "x")
    h.engine.detach(w)
    h.settle()
    assert [r[0] for r in h.rows("$dlq/images/+")] == [b"x"]
    show = h.engine.show("images/+")
    assert show["dead_letter"]["name"] == "$dlq/images/+"
    assert show["dead_letter"]["sample"][0]["payload"] == "x"


def test_dead_letter_queue_can_be_subscribed_before_it_exists(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", name="orders"))
    assert h.engine.subscribe("$queue/$dlq/orders", Worker("w"), 1) == 0
    assert h.engine.subscribe("$queue/$dlq/nothing", Worker("w"), 1) == 0x8F


def test_delivery_count_is_persisted_and_survives_a_restart(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", max_deliveries=3))
    w = Worker("w")
    h.engine.subscribe("$q/jobs", w, 1)
    h.publish("jobs", "x")
    h.engine.detach(w)
    h.engine.subscribe("$q/jobs", w := Worker("w2"), 1)
    h.settle()
    assert h.rows("jobs") == [(b"x", 2, None)]
    engine = h.restart()  # crash-free restart: the count comes back from disk
    again = Worker("again")
    engine.subscribe("$q/jobs", again, 1)
    assert again.got[0].dup
    engine.detach(again)
    h.settle()
    assert h.rows("jobs") == []
    assert [r[0] for r in h.rows("$dlq/jobs")] == [b"x"]


def test_unsubscribe_returns_what_is_in_flight_at_once(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs"))
    w, other = Worker("w"), Worker("other")
    h.engine.subscribe("$q/jobs", w, 1)
    h.publish("jobs", "1")
    h.engine.subscribe("$q/jobs", other, 1)
    assert h.engine.unsubscribe("$q/jobs", w)
    assert [(d.message.payload, d.dup) for d in other.got] == [(b"1", True)]
    h.ack_all(w)  # a late acknowledgement is ignored
    assert h.stats("jobs").depth == 1
    assert h.stats("jobs").consumers == 1
    assert not h.engine.unsubscribe("$q/jobs", w)


def test_an_old_style_dead_letter_queue_takes_its_new_name(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", name="orders", max_deliveries=1))
    w = Worker("w")
    h.engine.subscribe("$queue/orders", w, 1)
    h.publish("jobs", "poison")
    h.engine.detach(w)
    h.settle()
    h.engine.flush()
    h.settle()
    with sqlite3.connect(h.path) as conn:  # what an earlier version wrote
        conn.execute("UPDATE queue_messages SET queue = 'orders.dlq' WHERE queue = '$dlq/orders'")
        conn.execute("UPDATE queues SET name = 'orders.dlq' WHERE name = '$dlq/orders'")
    h.restart()
    assert [r[0] for r in h.rows("$dlq/orders")] == [b"poison"]
    assert h.stats("$dlq/orders").kind == "dead_letter"
    assert all(s.name != "orders.dlq" for s in h.engine.stats())
