"""Live traffic: publishers and subscribers online together, measured twice on one broker.

First at full speed (throughput and broker CPU per message, with an end-to-end window so the
broker is saturated but not buried), then at a fixed offered load of `PROBE_RATE` msg/s for the
latency percentiles. Latency measured at saturation only restates the window size (Little's law),
so it is not reported from the first run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bench.brokers import BrokerSetup
from bench.clients import PublisherSpec, SubscriberSpec
from bench.metrics import latency_ms
from bench.records import message_id
from bench.scenarios.common import (
    Context,
    Outcome,
    apply_check,
    check_ids,
    fill_from_phase,
    require_finished,
    running_broker,
)
from bench.workers import Phase, PhaseResult, WorkerSpec, run_phase

PROBE_RATE = 2000  # msg/s, all publishers together
PROBE_SECONDS = 2.0


@dataclass(frozen=True)
class Live:
    name: str
    publishers: tuple[PublisherSpec, ...]
    subscribers: tuple[SubscriberSpec, ...]
    setup: BrokerSetup = field(default_factory=BrokerSetup)
    lossy: bool = False  # QoS 0: losses are reported, not fatal

    def phase(self, pubs: tuple[PublisherSpec, ...], subs: tuple[SubscriberSpec, ...],
              timeout: float) -> Phase:
        expected = sum(p.count for p in pubs)
        return Phase((WorkerSpec(publishers=pubs), WorkerSpec(subscribers=subs)),
                     expected=expected, timeout=timeout, lossy=self.lossy)


def expected_ids(pubs: tuple[PublisherSpec, ...]) -> set[int]:
    return {message_id(p.publisher, s) for p in pubs for s in range(p.count)}


def probe_specs(live: Live, seconds: float) -> tuple[tuple[PublisherSpec, ...],
                                                     tuple[SubscriberSpec, ...]]:
    """The same clients at PROBE_RATE msg/s in total for `seconds`.

    Subscribers keep their client ids: a persistent session left behind under another id
    would still be a member of a shared subscription and take its share of the messages.
    """
    rate = PROBE_RATE / len(live.publishers)
    pubs = tuple(replace(p, client_id=p.client_id + "-lat", rate=rate, batch=10,
                         count=int(rate * seconds)) for p in live.publishers)
    return pubs, live.subscribers


def run_live(ctx: Context, kind: str, live: Live) -> list[Outcome]:
    out = Outcome(live.name, kind)
    probe_pubs, probe_subs = probe_specs(live, PROBE_SECONDS)
    probe: PhaseResult | None = None
    with running_broker(ctx, live.name, kind, live.setup) as broker:
        full = run_phase(live.phase(live.publishers, live.subscribers, ctx.timeout(120)), broker)
        if not full.timed_out:
            probe = run_phase(live.phase(probe_pubs, probe_subs, ctx.timeout(30)), broker)
    total = sum(p.count for p in live.publishers)
    if not live.lossy:
        require_finished(full, "received", total)
    fill_from_phase(out, full, total, latency=False)
    apply_check(out, check_ids(full.ids(), expected_ids(live.publishers)), not live.lossy)
    if probe is not None:
        _apply_probe(out, probe, probe_pubs, live.lossy)
    return [out]


def _apply_probe(out: Outcome, probe: PhaseResult, pubs: tuple[PublisherSpec, ...],
                 lossy: bool) -> None:
    lat = latency_ms(probe.latencies())
    if lat:
        out.p50_ms, out.p99_ms = lat
    check = check_ids(probe.ids(), expected_ids(pubs))
    if check.problems(not lossy) and not out.correctness_error:
        apply_check(out, check, not lossy)
        out.reason += " (latency probe)"
    elif lossy and check.lost:
        out.counts["lost in probe"] = check.lost
