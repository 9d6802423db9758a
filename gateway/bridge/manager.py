"""The bridges of one broker: started with it, reloaded with the config, stopped before the store
closes, and reported to `$SYS`, the admin API and `edgeq top`.

`gateway.serve` builds `Bridges` and hands it to the broker as a service
(`gateway.broker.service.Service`): the broker calls `start`, `tick` (once a second),
`stop_changed` + `start` around a queue reload, `sys_entries`, and `stop`; the admin API gets
`snapshot`. A bridge whose definition changed is restarted; its outbox queues keep their
messages (they are queues like any other).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from gateway.bridge.host import Host
from gateway.bridge.status import STATE_FIELDS, outbox_figures, sys_entries
from gateway.config import Config
from gateway.messages import Message

if TYPE_CHECKING:
    from gateway.bridge.bridge import Bridge

log = logging.getLogger("gateway.bridge")


class Bridges:
    def __init__(self, broker: Host) -> None:
        self._broker = broker
        self.running: dict[str, Bridge] = {}
        self._started = False
        self._last_tick: float | None = None

    def start(self, config: Config) -> None:
        """Start every bridge of `config` not running yet."""
        self._started = True
        if not config.bridges:
            return
        from gateway.bridge.bridge import Bridge  # the MQTT client only where a bridge runs

        for spec in config.bridges:
            if spec.name not in self.running:
                bridge = Bridge(spec, self._broker, self._changed)
                self.running[spec.name] = bridge
                bridge.start()

    def stop_changed(self, config: Config) -> None:
        """Reload, before the queues: stop bridges that were removed or redefined."""
        wanted = {spec.name: spec for spec in config.bridges}
        for name, bridge in list(self.running.items()):
            if wanted.get(name) != bridge.spec:
                log.info("bridge %s: %s by the new configuration", name,
                         "redefined" if name in wanted else "removed")
                bridge.stop()
                del self.running[name]
                if name not in wanted:
                    self._forget(bridge)

    async def stop(self) -> None:
        """Shutdown: close every uplink (say DISCONNECT) and wait for the tasks to end."""
        bridges = list(self.running.values())
        self.running.clear()
        for bridge in bridges:
            bridge.stop()
        for bridge in bridges:
            await bridge.wait_stopped()

    def tick(self, now: float) -> None:
        """Once a second (event-loop time): rates."""
        dt = now - self._last_tick if self._last_tick is not None else 0.0
        self._last_tick = now
        for bridge in self.running.values():
            bridge.tick(dt)

    # -- reporting -------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """One record per bridge: connection state, counters, rates and outbox figures."""
        if not self.running:
            return []
        stats = {q.name: q for q in self._broker.engine.stats()}
        return [self._record(bridge, stats) for bridge in self.running.values()]

    @staticmethod
    def _record(bridge: Bridge, stats: dict[str, Any]) -> dict[str, Any]:
        queues = [stats[name] for name in bridge.topics.by_queue if name in stats]
        return {**bridge.record(), **outbox_figures(queues)}

    def sys_entries(self) -> list[tuple[str, str]]:
        """`$SYS/broker/bridges` (all records as JSON) and the per-bridge topics."""
        records = self.snapshot()
        entries = [("$SYS/broker/bridges", json.dumps(records))] if self._started else []
        for record in records:
            entries += sys_entries(record)
        return entries

    def _forget(self, bridge: Bridge) -> None:
        """A removed bridge's retained `$SYS` topics are cleared (empty retained messages)."""
        now = self._broker.clock()
        for topic, _ in sys_entries({**bridge.record(), **outbox_figures([])}):
            self._broker.publish(Message(topic, b"", 0, True, {}, "", now))

    def _changed(self, bridge: Bridge) -> None:
        """A state change or a new error: its `$SYS` state topics at once, not at the next
        `sys_interval`."""
        if not self._broker.config.mqtt.sys_interval:
            return
        now = self._broker.clock()
        for topic, payload in sys_entries(bridge.record(), STATE_FIELDS):
            self._broker.publish(Message(topic, payload.encode(), 0, True, {}, "", now))
