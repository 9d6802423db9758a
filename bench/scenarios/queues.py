"""Queue scenarios: the durable work queue with three consumers, and the last-value queue."""

from __future__ import annotations

from bench.brokers import EDGEQ, BrokerSetup, QueueDecl
from bench.clients import PublisherSpec, SubscriberSpec
from bench.records import message_id
from bench.scenarios.common import (
    Context,
    Outcome,
    Scenario,
    apply_check,
    check_ids,
    fill_from_phase,
    require_finished,
    running_broker,
)
from bench.scenarios.live import Live, run_live
from bench.wire import V5
from bench.workers import Phase, WorkerSpec, run_phase

WORKERS = 3
WORKER_RECEIVE_MAXIMUM = 100


def run_queue(ctx: Context, kind: str) -> list[Outcome]:
    """QoS 1 in, committed with an fsync (`synchronous = "full"`, edgeq's default) before each
    PUBACK, QoS 1 out to three least_inflight consumers acknowledging.

    Mosquitto has no queues: its closest equivalent is three persistent sessions
    (clean start off, session expiry 1 h) sharing `$share/jobs/jobs/+`, which is what runs there.
    """
    count = ctx.size(200_000, 20_000)
    topics = tuple(f"jobs/{i}" for i in range(8))
    pub = PublisherSpec("queue-pub", 0, topics, 1, count)
    if kind == EDGEQ:
        setup = BrokerSetup(queues=[QueueDecl("jobs/+", dispatch="least_inflight")],
                            synchronous="full")
        topic_filter, clean = "$q/jobs/+", True
    else:
        setup, topic_filter, clean = BrokerSetup(), "$share/jobs/jobs/+", False
    subs = tuple(SubscriberSpec(f"queue-worker{i}", topic_filter, 1, len(topics[0]), version=V5,
                                clean=clean, receive_maximum=WORKER_RECEIVE_MAXIMUM)
                 for i in range(WORKERS))
    return run_live(ctx, kind, Live("queue", (pub,), subs, setup))


LVQ_KEYS = 1000


def last_values(count: int, keys: int) -> set[int]:
    """Message ids of the newest message per key when seq n goes to key n % keys."""
    return {message_id(0, (count - 1 - k) // keys * keys + k) for k in range(min(keys, count))}


def run_lvq(ctx: Context, kind: str) -> list[Outcome]:
    """N QoS 1 messages over 1,000 keys with no consumer, then one consumer drains the queue.

    It must receive exactly the newest message of each key.
    """
    count = ctx.size(100_000, 20_000)
    topics = tuple(f"lvq/k{k:04d}" for k in range(LVQ_KEYS))
    setup = BrokerSetup(queues=[QueueDecl("lvq/+", dispatch="round_robin",
                                          last_value_key="topic_level:1")])
    pub = PublisherSpec("lvq-pub", 0, topics, 1, count)
    sub = SubscriberSpec("lvq-consumer", "$q/lvq/+", 1, len(topics[0]), late=True)
    out = Outcome("lvq", kind)
    with running_broker(ctx, "lvq", kind, setup) as broker:
        fill = run_phase(Phase((WorkerSpec(publishers=(pub,)),), timeout=ctx.timeout(120)),
                         broker)
        require_finished(fill, "acknowledged", count)
        drain = run_phase(Phase((WorkerSpec(subscribers=(sub,)),), expected=LVQ_KEYS,
                                timeout=ctx.timeout(30)), broker)
    require_finished(drain, "drained", LVQ_KEYS)
    fill_from_phase(out, fill, count, latency=False)
    out.peak_rss_mb = drain.window.end.hwm_kib / 1024
    out.extra["drain 1k keys ms"] = drain.seconds * 1000
    apply_check(out, check_ids(drain.ids(), last_values(count, LVQ_KEYS)))
    return [out]


SCENARIOS = [
    Scenario("queue", "durable queue, QoS 1 in → 3 workers", run_queue,
             note="queue: edgeq consumes `$q/jobs/+` (least_inflight, MQTT 5, Receive Maximum "
                  f"{WORKER_RECEIVE_MAXIMUM}) with `storage.synchronous = \"full\"`: every "
                  "message is fsynced before its PUBACK; Mosquitto has no queues, its column is "
                  "the closest equivalent: 3 persistent sessions sharing `$share/jobs/jobs/+`."),
    Scenario("lvq", "last-value queue, 1,000 keys", run_lvq, brokers=(EDGEQ,),
             note="lvq: msg/s and CPU/msg are the producer side (with replacement); the consumer "
                  "must then get exactly the newest message of each of the 1,000 keys."),
]
