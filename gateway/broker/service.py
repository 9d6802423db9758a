"""What runs beside the broker without the broker knowing what it is (today: the bridges).

The composition root (`gateway.serve`) builds it and appends it to `Broker.services`; the
broker starts it once its listeners are bound, ticks it once a second, lets it stop what a
reload redefines before the queues change and start what the new config declares after, asks
it for `$SYS` entries every `mqtt.sys_interval`, and stops it before the store closes. This
keeps the broker below the bridge: the bridge imports the broker's vocabulary, never the reverse.
"""

from __future__ import annotations

from typing import Protocol

from gateway.config import Config


class Service(Protocol):
    """Something that runs beside the broker (the bridges), handed in by `gateway.serve`."""

    def start(self, config: Config) -> None:
        """Once the listeners are bound, and after a reload: start what `config` declares."""

    def stop_changed(self, config: Config) -> None:
        """On a reload, before the queues change: stop what `config` redefines or removes."""

    def tick(self, now: float) -> None:
        """Once a second (event-loop time)."""

    async def stop(self) -> None:
        """Shutdown, before the store closes."""

    def sys_entries(self) -> list[tuple[str, str]]:
        """(topic, payload) pairs published retained under `$SYS` every `sys_interval`."""
