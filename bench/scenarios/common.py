"""What every scenario shares: its context, its outcome rows, broker lifetime and the checks.

A scenario runs against one broker kind at a time and returns one or more `Outcome` rows. A
scenario that cannot run on a broker (not implemented, timed out, refused) raises
`ScenarioError`; the runner turns that into a FAILED row and goes on. A lost or duplicated
message is a correctness failure: the row says so and the whole run exits non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.brokers import BROKERS, EDGEQ, Broker, BrokerSetup
from bench.metrics import latency_ms
from bench.profile import Profiler
from bench.workers import PhaseResult

OK = "ok"
FAILED = "FAILED"
NOT_APPLICABLE = "n/a"


class ScenarioError(Exception):
    """The scenario could not be measured on this broker; the message says why."""


@dataclass
class Outcome:
    """One row of the table: a scenario measured on one broker."""

    scenario: str
    broker: str
    status: str = OK
    reason: str = ""
    msg_s: float | None = None
    cpu_us: float | None = None  # broker CPU microseconds per message
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    extra: dict[str, float] = field(default_factory=dict)  # scenario-specific figures
    counts: dict[str, int] = field(default_factory=dict)  # published, received, lost, ...
    generator_bound: bool = False  # a load process was busy >90% of the window
    correctness_error: bool = False


@dataclass
class Context:
    quick: bool
    workdir: Path
    deadline: float  # time.monotonic() by which the whole run should be over
    profile_dir: Path | None = None  # record edgeq with py-spy into this directory

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def timeout(self, wanted: float) -> float:
        """A phase timeout that keeps the run inside its overall time budget."""
        return max(5.0, min(wanted, self.deadline - time.monotonic()))


Runner = Callable[[Context, str], list[Outcome]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Runner
    brokers: tuple[str, ...] = BROKERS
    note: str = ""  # shown under the table, e.g. what stands in for a feature Mosquitto lacks


@contextmanager
def running_broker(ctx: Context, scenario: str, kind: str, setup: BrokerSetup,
                   keep: bool = False) -> Iterator[Broker]:
    """A fresh broker in a fresh directory for one scenario, stopped afterwards."""
    workdir = ctx.workdir / scenario / kind
    if workdir.exists() and not keep:
        raise ScenarioError(f"{workdir} already exists")
    broker = Broker(kind, workdir, setup).start()
    profiler = None
    if ctx.profile_dir is not None and kind == EDGEQ:
        ctx.profile_dir.mkdir(parents=True, exist_ok=True)
        profiler = Profiler(broker.pid, ctx.profile_dir / f"{scenario}-edgeq.txt")
    try:
        yield broker
    finally:
        if profiler is not None:
            profiler.stop()
        broker.stop()


@dataclass(frozen=True, slots=True)
class Check:
    expected: int
    received: int
    lost: int
    duplicated: int
    unexpected: int

    def problems(self, losses_fatal: bool = True) -> list[str]:
        out = []
        if self.lost and losses_fatal:
            out.append(f"{self.lost} lost")
        if self.duplicated:
            out.append(f"{self.duplicated} duplicated")
        if self.unexpected:
            out.append(f"{self.unexpected} unexpected")
        return out


def check_ids(received: Iterable[int], expected: set[int]) -> Check:
    """Compare received message ids with the set that should have arrived exactly once."""
    ids = list(received)
    got = set(ids)
    return Check(len(expected), len(ids), len(expected - got), len(ids) - len(got),
                 len(got - expected))


def apply_check(out: Outcome, check: Check, losses_fatal: bool = True) -> None:
    out.counts.update(expected=check.expected, received=check.received, lost=check.lost,
                      duplicated=check.duplicated, unexpected=check.unexpected)
    problems = check.problems(losses_fatal)
    if check.lost and not losses_fatal:
        out.extra["lost"] = check.lost
    if problems:
        out.status, out.correctness_error = FAILED, True
        out.reason = "CORRECTNESS: " + ", ".join(problems) + f" of {check.expected}"


def fill_from_phase(out: Outcome, phase: PhaseResult, messages: int,
                    latency: bool = True) -> None:
    """Throughput, CPU per message, latency and peak RSS of a measured phase."""
    w = phase.window
    out.msg_s = messages / phase.seconds if phase.seconds > 0 else None
    out.cpu_us = w.cpu_us_per(messages)
    if messages and w.other_threads_cpu > 0.05 * w.cpu:
        out.extra["other threads µs/msg"] = w.other_threads_cpu / messages * 1e6
    out.peak_rss_mb = w.end.hwm_kib / 1024
    if latency:
        lat = latency_ms(phase.latencies())
        if lat:
            out.p50_ms, out.p99_ms = lat
    busiest = max((wr.cpu for wr in phase.workers), default=0.0)
    out.generator_bound = w.seconds > 0 and busiest / w.seconds > 0.9


def require_finished(phase: PhaseResult, what: str, expected: int) -> None:
    if phase.timed_out:
        raise ScenarioError(f"timeout after {phase.window.seconds:.0f}s: {what} "
                             f"{phase.received or phase.acked}/{expected}")
