"""Scale scenarios: the million-message burst and restart, idle connections, start-up time."""

from __future__ import annotations

import statistics
import time

from bench import swarm
from bench.blocking import BlockingClient
from bench.brokers import EDGEQ, MOSQUITTO, Broker, BrokerSetup, QueueDecl
from bench.clients import PublisherSpec, SubscriberSpec
from bench.metrics import sample, status_kib
from bench.scenarios.common import (
    FAILED,
    Context,
    Outcome,
    Scenario,
    ScenarioError,
    apply_check,
    check_ids,
    fill_from_phase,
    require_finished,
    running_broker,
)
from bench.scenarios.live import expected_ids
from bench.workers import Phase, WorkerSpec, run_phase

BURST_TOPIC = "burst/data"


def _burst_setup(kind: str) -> BrokerSetup:
    if kind == EDGEQ:
        return BrokerSetup(queues=[QueueDecl("burst/#", max_messages=2_000_000,
                                             overflow="block")])
    return BrokerSetup(persistence=True)


def run_burst(ctx: Context, kind: str) -> list[Outcome]:
    """N QoS 1 messages with no consumer online, then a restart with all of them queued.

    edgeq keeps them in a `block` queue; Mosquitto in an offline persistent session (its only
    way to hold messages nobody is reading), saved to its persistence file on SIGTERM.
    """
    count = ctx.size(1_000_000, 50_000)
    burst, ready = Outcome("burst", kind), Outcome("ready-queued", kind)
    broker = Broker(kind, ctx.workdir / "burst" / kind, _burst_setup(kind)).start()
    try:
        if kind == MOSQUITTO:
            holder = BlockingClient(broker.port, "burst-holder", clean=False)
            holder.subscribe("burst/#", 1)
            holder.disconnect()
        pub = PublisherSpec("burst-pub", 0, (BURST_TOPIC,), 1, count)
        fill = run_phase(Phase((WorkerSpec(publishers=(pub,)),), timeout=ctx.timeout(300)),
                         broker)
        fill_from_phase(burst, fill, max(1, fill.acked), latency=False)
        burst.counts.update(published=fill.published, acknowledged=fill.acked)
        burst.extra["RSS at end MB"] = status_kib(broker.pid, "VmRSS") / 1024
        if fill.timed_out:
            burst.status = FAILED
            burst.reason = (f"timeout: {fill.acked}/{count} acknowledged "
                            f"in {fill.window.seconds:.0f}s")
        _restart(broker, ready, fill.acked)
        if ctx.quick and not fill.timed_out:
            _verify_after_restart(ctx, broker, ready, count)
    finally:
        broker.stop()
    return [burst, ready]


def _verify_after_restart(ctx: Context, broker: Broker, out: Outcome, count: int) -> None:
    """Drain the restarted broker: every acknowledged message must still be there, once."""
    if broker.kind == EDGEQ:
        sub = SubscriberSpec("burst-drain", "$q/burst/#", 1, len(BURST_TOPIC), late=True)
    else:
        sub = SubscriberSpec("burst-holder", None, 1, len(BURST_TOPIC), clean=False, late=True)
    drain = run_phase(Phase((WorkerSpec(subscribers=(sub,)),), expected=count,
                            timeout=ctx.timeout(60)), broker)
    require_finished(drain, "drained after restart", count)
    out.extra["drain msg/s"] = count / drain.seconds
    apply_check(out, check_ids(drain.ids(), expected_ids((PublisherSpec("", 0, (), 1, count),))))


def _restart(broker: Broker, out: Outcome, queued: int) -> None:
    began = time.monotonic()
    broker.stop(timeout=120)
    out.extra["stop s"] = time.monotonic() - began
    broker.start()
    out.extra["ready s"] = broker.ready_seconds
    out.peak_rss_mb = status_kib(broker.pid, "VmHWM") / 1024
    out.counts["queued"] = queued


def run_idle(ctx: Context, kind: str) -> list[Outcome]:
    """N idle connections (keepalive 60 s): memory per connection, then all must answer a ping."""
    count = ctx.size(10_000, 1_000)
    hold = ctx.size(5, 1)
    out = Outcome("idle", kind)
    with running_broker(ctx, "idle", kind, BrokerSetup()) as broker:
        before = sample(broker.pid)
        socks = swarm.open_idle(broker.port, count, keepalive=60)
        try:
            after = sample(broker.pid)
            time.sleep(hold)
            alive = swarm.ping_all(socks)
            broker.check_alive()
            end = sample(broker.pid)
        finally:
            swarm.close_all(socks)
    seconds = after.wall - before.wall
    out.peak_rss_mb = end.hwm_kib / 1024
    out.extra["conn/s"] = count / seconds
    out.extra["CPU µs/conn"] = (after.cpu - before.cpu) / count * 1e6
    out.extra["RSS KiB/conn"] = (after.rss_kib - before.rss_kib) / count
    out.counts.update(connections=count, answered_ping=alive)
    if alive != count:
        raise ScenarioError(f"only {alive} of {count} idle connections answered PINGREQ")
    return [out]


def run_startup(ctx: Context, kind: str) -> list[Outcome]:
    """Spawn to first CONNACK with an empty store: the median of a few starts."""
    tries = ctx.size(3, 1)
    times, hwm = [], 0
    for i in range(tries):
        broker = Broker(kind, ctx.workdir / "startup" / kind / f"try{i}", BrokerSetup()).start()
        try:
            times.append(broker.ready_seconds)
            hwm = max(hwm, status_kib(broker.pid, "VmHWM"))
        finally:
            broker.stop()
    out = Outcome("ready-empty", kind, peak_rss_mb=hwm / 1024)
    out.extra["ready s"] = statistics.median(times)
    return [out]


SCENARIOS = [
    Scenario("startup", "start to ready, empty store", run_startup),
    Scenario("idle", "idle connections, keepalive 60 s", run_idle,
             note="idle: conn/s and CPU µs/conn while opening; RSS KiB/conn is the VmRSS growth "
                  "divided by the connections; every connection must answer a PINGREQ after "
                  "the hold."),
    Scenario("burst", "burst, QoS 1, no consumer; then restart", run_burst,
             note="burst: edgeq holds the messages in a `block` queue (max 2,000,000); Mosquitto "
                  "in an offline persistent session (persistence on, saved at SIGTERM). "
                  "ready-queued: stop, restart on the same store, spawn to first CONNACK; "
                  "with --quick the restarted broker is then drained and every message checked."),
]
