"""create / delete / purge / stats / show / reload, as the CLI and admin API use them."""

from __future__ import annotations

import pytest

from gateway.queues import QueueError
from tests.queues.conftest import HarnessFactory, Worker, spec


def test_create_publish_and_survive_a_restart(make_engine: HarnessFactory) -> None:
    h = make_engine()
    h.engine.create(spec("orders/#", name="orders", dispatch="least_inflight"))
    h.publish("orders/1", "x")
    engine = h.restart()
    stats = h.stats("orders")
    assert (stats.depth, stats.dispatch, stats.filter) == (1, "least_inflight", "orders/#")
    assert "orders" in {s.name for s in engine.stats()}
    assert h.publish("orders/2", "y").matched == 1


def test_management_errors_say_what_is_wrong(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", name="configured"))
    h.engine.create(spec("a/b", name="mine"))
    with pytest.raises(QueueError, match="already exists"):
        h.engine.create(spec("x", name="mine"))
    with pytest.raises(QueueError, match="reserved"):
        h.engine.create(spec("$dlq/mine"))
    with pytest.raises(QueueError, match="no queue named 'nope'"):
        h.engine.purge("nope")
    with pytest.raises(QueueError, match="no queue named"):
        h.engine.show("nope")
    with pytest.raises(QueueError, match="config file"):
        h.engine.delete("configured")
    with pytest.raises(QueueError, match="filter"):
        h.engine.create(spec("a/#/b", name="bad"))
    with pytest.raises(QueueError, match="name"):
        h.engine.create(spec("a", name="bad name"))
    with pytest.raises(QueueError, match="wildcard"):
        h.engine.create(spec("a/b", name="t", template=True))
    assert isinstance(QueueError("x"), ValueError)


def test_purge_removes_waiting_messages_but_not_in_flight(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t"), window=5)
    w = Worker("w", receive_maximum=2)
    h.engine.subscribe("$q/t", w, 1)
    for i in range(20):
        h.publish("t", str(i), settle=False)
    h.settle()
    assert h.engine.purge("t") == 18
    h.settle()
    assert [r[0] for r in h.rows("t")] == [b"0", b"1"]
    h.ack_all(w)
    assert h.stats("t").depth == 0
    h.publish("t", "after")
    h.ack_all(w)
    assert w.payloads[-1] == b"after"


def test_delete_removes_queue_and_messages(make_engine: HarnessFactory) -> None:
    h = make_engine()
    h.engine.create(spec("t", name="temp"))
    w = Worker("w")
    h.engine.subscribe("$queue/temp", w, 1)
    h.publish("t", "x")
    h.engine.delete("temp")
    h.settle()
    assert h.rows("temp") == []
    assert "temp" not in {s.name for s in h.engine.stats()}
    assert h.publish("t", "y").matched == 0
    h.engine.ack(w, w.got[0].token)  # a late acknowledgement is harmless
    h.restart()
    assert "temp" not in {s.name for s in h.engine.stats()}


def test_delete_a_template_deletes_its_instances(make_engine: HarnessFactory) -> None:
    h = make_engine()
    h.engine.create(spec("dev/+/cmd", name="devices", template=True))
    h.publish("dev/a/cmd", "x")
    h.engine.delete("devices")
    assert h.engine.stats() == []


def test_show_lists_consumers_and_their_counts(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", name="orders"))
    w = Worker("worker-1")
    h.engine.subscribe("$queue/orders", w, 1)
    h.publish("jobs", "1")
    h.publish("jobs", "2")
    h.engine.ack(w, w.got[0].token)
    show = h.engine.show("orders")
    assert show["consumers"] == [{"client_id": "worker-1", "qos": 1, "inflight": 1, "acked": 1,
                                  "active": True}]
    assert show["stats"]["depth"] == 1 and show["settings"]["filter"] == "jobs"


def test_stats_report_lag_and_rates(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t"))
    h.engine.tick(h.clock.now)
    for i in range(10):
        h.publish("t", str(i), settle=False)
    h.clock.now += 1
    h.engine.tick(h.clock.now)
    h.clock.now += 4
    w = Worker("w", receive_maximum=2)
    h.engine.subscribe("$q/t", w, 1)
    stats = h.stats("t")
    assert (stats.depth, stats.inflight, stats.lag_messages) == (10, 2, 8)
    assert stats.lag_seconds == 5.0 and stats.oldest_age == 5.0
    assert stats.in_rate > 0 and stats.consumers == 1 and stats.enqueued == 10


def test_reload_applies_changes_without_dropping_consumers(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", name="work", max_inflight=1), spec("gone", name="old"))
    w = Worker("w")
    h.engine.subscribe("$queue/work", w, 1)
    h.publish("t", "1")
    h.publish("t", "2")
    assert len(w.unacked) == 1
    notes = h.engine.reload([spec("t", name="work", max_inflight=5), spec("new")])
    assert notes == ["queue old: removed", "queue work: settings applied", "queue new: added"]
    assert len(w.unacked) == 2  # the wider window applies at once
    assert {s.name for s in h.engine.stats()} == {"work", "new"}


def test_a_queue_removed_from_the_config_keeps_its_messages(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("t", name="work"))
    h.publish("t", "1")
    notes = h.engine.reload([])
    assert "kept unbound with 1 messages" in notes[0]
    assert h.publish("t", "2").matched == 0  # no longer bound to its filter
    engine = h.restart(specs=[])
    w = Worker("w")
    assert engine.subscribe("$queue/work", w, 1) == 0
    assert w.payloads == [b"1"]
