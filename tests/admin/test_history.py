"""`GET /api/v1/history`: the sampled minutes of every queue that `edgeq top` draws at once."""

from __future__ import annotations

import json
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.admin.client import AdminClient
from gateway.admin.history import History
from gateway.queues.model import QueueStats
from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess

CONFIG = """
[admin]
history = 3
history_interval = 0.25

[[queues]]
filter = "jobs/#"
name = "jobs"

[[queues]]
filter = "spare/#"
name = "spare"
"""


def admin(gw: GatewayProcess) -> AdminClient:
    found = json.loads((gw.data_dir / "admin.json").read_text())
    return AdminClient(found["url"], found["token"])


def publish(gw: GatewayProcess, topic: str, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="history-pub")
    client.connect("127.0.0.1", gw.port)
    client.loop_start()
    try:
        for i in range(count):
            client.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def wait_for(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + 10
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def test_history_counts_every_message_and_keeps_the_window(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    api = admin(gw)
    wait_for(lambda: len(api.history()["queues"]["jobs"]["depth"]) >= 2, "two samples")
    publish(gw, "jobs/a", 40)
    wait_for(lambda: api.history()["queues"]["jobs"]["depth"][-1] == 40, "depth 40 sampled")
    # Let the window fill and slide: it keeps 3 s / 0.25 s = 12 samples, no more.
    time.sleep(3.5)
    history = api.history()
    jobs = history["queues"]["jobs"]
    assert history["interval"] == 0.25 and history["window"] == 3
    assert len(history["ages"]) == 12 and all(len(jobs[f]) == 12 for f in jobs if f != "start")
    assert jobs["depth"] == [40] * 12 and jobs["lag_messages"] == [40] * 12
    assert jobs["lag_seconds"][-1] > jobs["lag_seconds"][0] > 0  # nobody consumes: it ages
    assert history["ages"] == sorted(history["ages"], reverse=True)
    assert history["queues"]["spare"]["depth"] == [0] * 12


def test_rates_are_averages_over_each_interval(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    api = admin(gw)
    wait_for(lambda: len(api.history()["queues"]["jobs"]["depth"]) >= 2, "two samples")
    publish(gw, "jobs/a", 30)
    history = wait_for(lambda: (h := api.history())["queues"]["jobs"]["depth"][-1] == 30 and h,
                       "depth 30 sampled")
    jobs, ages = history["queues"]["jobs"], history["ages"]
    assert jobs["depth"][0] == 0  # the window still holds a sample from before the publish
    # Each rate is messages over the time since the sample before: together, every message.
    offset = len(ages) - len(jobs["in_rate"])
    counted = sum(jobs["in_rate"][i] * (ages[offset + i - 1] - ages[offset + i])
                  for i in range(1, len(jobs["in_rate"])))
    assert abs(counted - 30) < 0.5
    assert set(jobs["out_rate"]) == {0}


def test_since_and_queue_narrow_the_answer(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(CONFIG)
    api = admin(gw)
    taken = wait_for(lambda: (t := api.history()["taken"]) >= 4 and t, "four samples")
    newer = api.history(since=taken - 2)
    assert len(newer["ages"]) == newer["taken"] - taken + 2
    assert all(len(q["depth"]) <= len(newer["ages"]) for q in newer["queues"].values())
    assert list(api.history(queue="spare")["queues"]) == ["spare"]
    # A `since` this gateway never reached (a client of an earlier run) gets everything.
    restarted = api.history(since=10**8)
    assert len(restarted["ages"]) == min(restarted["taken"], 12)


def test_queues_beyond_the_cap_get_no_history_until_one_goes() -> None:
    history = History(interval=5, window=15, max_queues=2)
    for t in range(5):
        history.sample([stats("a", enqueued=10 * t), stats("b"), stats("c")], now=5.0 * t)
    shown = history.describe(now=20.0)
    assert sorted(shown["queues"]) == ["a", "b"] and shown["ages"] == [10.0, 5.0, 0.0]
    assert shown["queues"]["a"]["in_rate"] == [2.0, 2.0, 2.0]
    history.sample([stats("b"), stats("c")], now=25.0)  # a was deleted: c takes its place
    assert sorted(history.describe(now=25.0)["queues"]) == ["b", "c"]


def test_a_queue_created_again_starts_a_new_series() -> None:
    history = History(interval=1, window=3, max_queues=10)
    for t in range(6):
        history.sample([stats("a", enqueued=100 + t)], now=float(t))
    before = history.describe(now=5.0)["queues"]["a"]
    history.sample([stats("a", enqueued=1)], now=6.0)  # its totals went back
    history.sample([stats("a", enqueued=3)], now=7.0)
    after = history.describe(now=7.0)["queues"]["a"]
    # The window slid (3 samples kept) but the series is the same one: its start stays.
    assert before["start"] == 2 and before["in_rate"] == [1.0, 1.0, 1.0]
    assert after["start"] == 8 and after["in_rate"] == [2.0]


def stats(name: str, enqueued: int = 0, acked: int = 0, depth: int = 0) -> QueueStats:
    return QueueStats(name=name, filter=f"{name}/#", kind="standard", dispatch="round_robin",
                      depth=depth, bytes=0, consumers=0, inflight=0, in_rate=0, out_rate=0,
                      lag_messages=depth, lag_seconds=0, oldest_age=0, enqueued=enqueued,
                      acked=acked, redelivered=0, dropped=0, rejected=0, replaced=0,
                      dead_lettered=0, expired=0, nacked=0, blocked=0, key_errors=0,
                      oversize=0)
