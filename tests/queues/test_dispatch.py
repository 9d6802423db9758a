"""The load-balancing queue pattern: one group per queue, each message to exactly one consumer."""

from __future__ import annotations

import typing
from collections import Counter

from gateway.config import QueueSpec
from gateway.queues.dispatch import STRATEGIES, make_strategy
from tests.queues.conftest import HarnessFactory, Worker, spec


def test_messages_wait_on_disk_until_a_consumer_subscribes(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("images/+"))
    for i in range(5):
        assert h.publish("images/process", f"job{i}").matched == 1
    assert [r[0] for r in h.rows("images/+")] == [f"job{i}".encode() for i in range(5)]
    w = Worker("w1")
    assert h.engine.subscribe("$q/images/+", w, 1) == 0
    assert w.payloads == [f"job{i}".encode() for i in range(5)]
    assert {d.message.topic for d in w.got} == {"images/process"}  # the original topic
    h.ack_all(w)
    assert h.rows("images/+") == []
    assert h.stats("images/+").acked == 5


def test_round_robin_takes_turns(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", dispatch="round_robin"))
    a, b, c = Worker("a"), Worker("b"), Worker("c")
    for w in (a, b, c):
        h.engine.subscribe("$q/jobs", w, 1)
    for i in range(9):
        h.publish("jobs", str(i))
    assert a.payloads == [b"0", b"3", b"6"]
    assert b.payloads == [b"1", b"4", b"7"]
    assert c.payloads == [b"2", b"5", b"8"]


def test_least_inflight_gives_a_slow_consumer_fewer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("images/+", dispatch="least_inflight", max_inflight=4))
    for i in range(1000):
        h.publish("images/process", str(i), settle=False)
    h.settle()
    fast1, fast2, slow = Worker("fast1"), Worker("fast2"), Worker("slow")
    for w in (fast1, fast2, slow):
        h.engine.subscribe("$q/images/+", w, 1)
    rounds = 0
    while h.stats("images/+").depth:
        for w in (fast1, fast2):  # the fast ones finish every job at once
            for token in list(w.unacked):
                del w.unacked[token]
                h.engine.ack(w, token)
        rounds += 1
        if rounds % 10 == 0 and slow.unacked:  # the slow one finishes one job now and then
            token = next(iter(slow.unacked))
            del slow.unacked[token]
            h.engine.ack(slow, token)
        h.settle()
    received = [len(w.got) for w in (fast1, fast2, slow)]
    assert sum(received) == 1000
    assert len({d.message.payload for w in (fast1, fast2, slow) for d in w.got}) == 1000
    assert received[2] < received[0] / 5 and received[2] < received[1] / 5


def test_least_inflight_prefers_the_emptiest(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", dispatch="least_inflight"))
    a, b = Worker("a"), Worker("b")
    h.engine.subscribe("$q/jobs", a, 1)
    h.publish("jobs", "1")
    h.publish("jobs", "2")
    h.engine.subscribe("$q/jobs", b, 1)
    h.publish("jobs", "3")
    assert b.payloads == [b"3"]  # a holds two, b none


def test_random_spreads_over_every_consumer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", dispatch="random"))
    workers = [Worker(f"w{i}") for i in range(3)]
    for w in workers:
        h.engine.subscribe("$q/jobs", w, 1)
    for i in range(300):
        h.publish("jobs", str(i), settle=False)
    h.ack_all(*workers)
    counts = [len(w.got) for w in workers]
    assert sum(counts) == 300 and min(counts) > 50


def test_sticky_keeps_a_key_on_one_consumer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("meters/+", dispatch="sticky"))
    a, b = Worker("a"), Worker("b")
    h.engine.subscribe("$q/meters/+", a, 1)
    h.engine.subscribe("$q/meters/+", b, 1)
    for i in range(20):
        h.publish(f"meters/m{i % 4}", str(i), settle=False)
    h.settle()
    owner: dict[str, str] = {}
    for w in (a, b):
        for d in w.got:
            assert owner.setdefault(d.message.topic, w.client_id) == w.client_id
    assert set(owner.values()) == {"a", "b"}
    for w in (a, b):  # per-key order holds
        per_key: dict[str, list[int]] = {}
        for d in w.got:
            per_key.setdefault(d.message.topic, []).append(int(d.message.payload))
        assert all(v == sorted(v) for v in per_key.values())


def test_sticky_key_moves_when_its_consumer_leaves(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("meters/+", dispatch="sticky"))
    a, b = Worker("a"), Worker("b")
    h.engine.subscribe("$q/meters/+", a, 1)
    h.publish("meters/m1", "1")
    h.ack_all(a)
    h.engine.subscribe("$q/meters/+", b, 1)
    h.publish("meters/m1", "2")
    assert a.payloads == [b"1", b"2"]
    h.engine.detach(a)
    h.publish("meters/m1", "3")
    assert b.payloads == [b"2", b"3"]  # "2" was in flight to a: redelivered to b first


def test_window_is_the_smaller_of_max_inflight_and_receive_maximum(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", max_inflight=5))
    small, big = Worker("small", receive_maximum=2), Worker("big", receive_maximum=50)
    h.engine.subscribe("$q/jobs", small, 1)
    h.engine.subscribe("$q/jobs", big, 1)
    for i in range(20):
        h.publish("jobs", str(i), settle=False)
    h.settle()
    assert (len(small.unacked), len(big.unacked)) == (2, 5)
    assert h.stats("jobs").inflight == 7
    assert h.stats("jobs").lag_messages == 13


def test_consumer_ready_dispatches_when_capacity_grows(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs"))
    w = Worker("w", receive_maximum=0)
    h.engine.subscribe("$q/jobs", w, 1)
    h.publish("jobs", "x")
    assert w.got == []
    w.receive_maximum = 10
    h.engine.consumer_ready(w)
    assert w.payloads == [b"x"]


def test_qos0_subscription_consumes_on_sending(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs"))
    w = Worker("w")
    h.engine.subscribe("$q/jobs", w, 0)
    h.publish("jobs", "x")
    assert w.payloads == [b"x"] and w.got[0].qos == 0
    assert h.rows("jobs") == []
    assert h.stats("jobs").depth == 0


def test_delivery_qos_is_the_subscription_qos(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs"))
    w = Worker("w")
    h.engine.subscribe("$q/jobs", w, 2)
    h.publish("jobs", "x", qos=0)
    assert w.got[0].qos == 2


def test_each_message_goes_to_exactly_one_consumer(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", dispatch="round_robin", max_inflight=3))
    workers = [Worker(f"w{i}") for i in range(4)]
    for w in workers:
        h.engine.subscribe("$q/jobs", w, 1)
    for i in range(200):
        h.publish("jobs", str(i), settle=False)
    h.ack_all(*workers)
    seen = Counter(d.message.payload for w in workers for d in w.got)
    assert len(seen) == 200 and set(seen.values()) == {1}


def test_the_config_offers_exactly_the_registered_strategies() -> None:
    choices = set(typing.get_args(typing.get_type_hints(QueueSpec)["dispatch"]))
    assert choices == set(STRATEGIES)
    for name in choices:
        assert make_strategy(name).name == name
