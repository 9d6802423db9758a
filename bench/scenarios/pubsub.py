"""Pub/sub scenarios: QoS 0 and QoS 1 pub→sub, fan-in to a shared subscription, offline drain."""

from __future__ import annotations

from bench.blocking import BlockingClient
from bench.brokers import BrokerSetup
from bench.clients import PublisherSpec, SubscriberSpec
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
from bench.scenarios.live import Live, expected_ids, run_live
from bench.workers import Phase, WorkerSpec, run_phase


def _one_to_one(name: str, qos: int, count: int) -> Live:
    topic = f"bench/{name}"
    pub = PublisherSpec(f"{name}-pub", 0, (topic,), qos, count)
    sub = SubscriberSpec(f"{name}-sub", topic, qos, len(topic))
    return Live(name, (pub,), (sub,), lossy=qos == 0)


def run_qos0(ctx: Context, kind: str) -> list[Outcome]:
    return run_live(ctx, kind, _one_to_one("qos0", 0, ctx.size(400_000, 40_000)))


def run_qos1(ctx: Context, kind: str) -> list[Outcome]:
    return run_live(ctx, kind, _one_to_one("qos1", 1, ctx.size(200_000, 20_000)))


FANIN_PUBLISHERS = 8
FANIN_MEMBERS = 3


def run_fanin(ctx: Context, kind: str) -> list[Outcome]:
    per_pub = ctx.size(25_000, 2_500)
    pubs = tuple(PublisherSpec(f"fanin-pub{p}", p, (f"bench/fan/{p}",), 1, per_pub)
                 for p in range(FANIN_PUBLISHERS))
    subs = tuple(SubscriberSpec(f"fanin-sub{i}", "$share/g/bench/fan/+", 1, len("bench/fan/0"))
                 for i in range(FANIN_MEMBERS))
    return run_live(ctx, kind, Live("fanin", pubs, subs))


def run_drain(ctx: Context, kind: str) -> list[Outcome]:
    """A clean_session=0 subscriber goes away, N QoS 1 messages wait, it comes back for them."""
    count = ctx.size(100_000, 10_000)
    topic = "bench/drain"
    sub = SubscriberSpec("drain-sub", None, 1, len(topic), clean=False, late=True)
    pub = PublisherSpec("drain-pub", 0, (topic,), 1, count)
    out = Outcome("drain", kind)
    with running_broker(ctx, "drain", kind, BrokerSetup()) as broker:
        setup = BlockingClient(broker.port, sub.client_id, clean=False)
        setup.subscribe(topic, 1)
        setup.disconnect()
        fill = run_phase(Phase((WorkerSpec(publishers=(pub,)),), timeout=ctx.timeout(90)),
                         broker)
        require_finished(fill, "acknowledged", count)
        drain = run_phase(Phase((WorkerSpec(subscribers=(sub,)),), expected=count,
                                timeout=ctx.timeout(90)), broker)
    require_finished(drain, "drained", count)
    fill_from_phase(out, drain, count, latency=False)
    out.cpu_us = (fill.window.cpu + drain.window.cpu) / count * 1e6
    out.extra["publish msg/s"] = count / fill.window.seconds
    apply_check(out, check_ids(drain.ids(), expected_ids((pub,))))
    return [out]


SCENARIOS = [
    Scenario("qos0", "QoS 0 pub→sub, 64 B", run_qos0,
             note="qos0: losses are counted, not fatal (QoS 0 may drop)."),
    Scenario("qos1", "QoS 1 pub→sub, 64 B", run_qos1),
    Scenario("fanin", "8 pubs → $share/g (3 subs), QoS 1", run_fanin),
    Scenario("drain", "offline persistent session drain, QoS 1", run_drain,
             note="drain: msg/s is the drain rate after reconnect; CPU/msg covers publish and "
                  "drain; latency n/a (messages waited offline)."),
]
