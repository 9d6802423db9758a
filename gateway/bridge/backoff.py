"""Reconnect delays: exponential backoff with jitter, so a fleet of gateways that lost the same
upstream does not come back in lock-step.

Step n is `min(reconnect_max, reconnect_min * 2**n)`; the delay is drawn between half and all of
the step ("equal jitter"), so it never collapses to zero.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    minimum: float
    maximum: float
    rand: Callable[[], float] = field(default=random.random)
    attempts: int = 0

    def step(self) -> float:
        """The current step before jitter."""
        return min(self.maximum, self.minimum * 2.0 ** min(self.attempts, 32))

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call doubles the step up to the cap."""
        step = self.step()
        self.attempts += 1
        return step / 2 + step / 2 * self.rand()

    def reset(self) -> None:
        self.attempts = 0
