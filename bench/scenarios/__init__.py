"""Every benchmark scenario, in the order a full run measures them."""

from __future__ import annotations

from bench.scenarios import backlog, pubsub, queues, scale
from bench.scenarios.common import Scenario

ALL: list[Scenario] = [*pubsub.SCENARIOS, *backlog.SCENARIOS, *queues.SCENARIOS,
                        *scale.SCENARIOS]
BY_NAME = {s.name: s for s in ALL}

# Row titles; a scenario may return rows under other names (burst → burst, ready-queued).
TITLES = {s.name: s.title for s in ALL} | {
    "ready-empty": "start to ready, empty store",
    "ready-queued": "start to ready, burst queued",
}
