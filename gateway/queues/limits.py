"""Limits on what clients can create: queues (`storage.max_queues`) and template instances
(`storage.max_instances`), and the idle expiry of empty instances (`storage.instance_expiry`).

A refusal raises `LimitReached`, which MQTT clients see as 0x97 Quota exceeded (0x80 for 3.1.1
SUBACKs) and the admin API as a 400; each is counted per limit, and logged at most once a minute
per limit so that a flood of refusals cannot flood the log. Queues from the config file and
dead-letter queues are never refused: the first are the operator's choice, the second are
bounded by the queues they belong to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.config import StorageSettings
from gateway.queues.model import Kind, LimitReached

log = logging.getLogger(__name__)
LOG_EVERY = 60.0


class CreationLimits:
    """The counts the limits apply to, and what was refused or expired."""

    def __init__(self, settings: StorageSettings, clock: Callable[[], float]) -> None:
        self.max_queues = settings.max_queues
        self.max_instances = settings.max_instances
        self.instance_expiry = settings.instance_expiry
        self.queues = 0  # every queue but instances and dead-letter queues
        self.instances = 0
        self.refused = {"max_queues": 0, "max_instances": 0}
        self.expired = 0  # idle instances removed
        self._clock = clock
        self._logged: dict[str, float] = {}

    def counted(self, kind: Kind, delta: int) -> None:
        if kind == "instance":
            self.instances += delta
        elif kind != "dead_letter":
            self.queues += delta

    def check_queue(self, name: str) -> None:
        if self.max_queues and self.queues >= self.max_queues:
            raise self._refuse("max_queues", f"queue limit reached (storage.max_queues = "
                               f"{self.max_queues}): queue {name!r} not created; delete a "
                               "queue or raise the limit")

    def check_instance(self, topic: str) -> None:
        if self.max_instances and self.instances >= self.max_instances:
            raise self._refuse("max_instances", "template instance limit reached "
                               f"(storage.max_instances = {self.max_instances}): no instance "
                               f"for {topic!r}")

    def _refuse(self, limit: str, text: str) -> LimitReached:
        self.refused[limit] += 1
        now = self._clock()
        if now - self._logged.get(limit, -LOG_EVERY) >= LOG_EVERY:
            self._logged[limit] = now
            log.warning("%s (%d refused since start-up; logged once a minute)", text,
                        self.refused[limit])
        return LimitReached(limit, text)
