"""Runs each scenario on each broker in turn; a failure becomes a FAILED row, never a crash."""

from __future__ import annotations

import sys
import time
import traceback

from bench.brokers import BrokerError
from bench.scenarios.common import (
    FAILED,
    NOT_APPLICABLE,
    Context,
    Outcome,
    Scenario,
    ScenarioError,
)
from bench.wire import ProtocolError
from bench.workers import PhaseError

EXPECTED_FAILURES = (ScenarioError, PhaseError, BrokerError, ProtocolError, OSError,
                     TimeoutError)


def run_one(ctx: Context, scenario: Scenario, kind: str) -> list[Outcome]:
    began = time.monotonic()
    print(f"[bench] {scenario.name:<8} {kind:<9} …", end="", file=sys.stderr, flush=True)
    try:
        rows = scenario.run(ctx, kind)
    except EXPECTED_FAILURES as exc:
        rows = [Outcome(scenario.name, kind, status=FAILED, reason=str(exc) or repr(exc))]
    except Exception as exc:  # a harness bug must not lose the other scenarios' figures
        traceback.print_exc()
        rows = [Outcome(scenario.name, kind, status=FAILED,
                        reason=f"harness error {type(exc).__name__}: {exc}")]
    states = ", ".join(f"{r.scenario} {r.status}" for r in rows)
    print(f" {states} ({time.monotonic() - began:.1f}s)", file=sys.stderr, flush=True)
    return rows


def run_all(ctx: Context, scenarios: list[Scenario], brokers: tuple[str, ...]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for scenario in scenarios:
        for kind in brokers:
            if kind not in scenario.brokers:
                outcomes.append(Outcome(scenario.name, kind, status=NOT_APPLICABLE,
                                        reason=f"{kind} has no equivalent"))
            elif time.monotonic() > ctx.deadline:
                outcomes.append(Outcome(scenario.name, kind, status=FAILED,
                                        reason="skipped: the run's time budget is spent"))
            else:
                outcomes += run_one(ctx, scenario, kind)
    return outcomes
