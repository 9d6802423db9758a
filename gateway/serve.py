"""`edgeq serve`: run the broker until SIGTERM, with systemd notification and SIGHUP reload.

This is the composition root: it builds the broker, the bridges (handed to the broker as a
service, so the broker never imports the bridge) and the admin API.

READY=1 is sent only once the store is open and every listener is bound; STATUS= follows the
number of clients and the queue backlog; SIGTERM stops accepting, flushes and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from gateway import config as config_mod
from gateway.appliance.gpio import LedState, NullPanel, Panel, led_state, open_panel
from gateway.appliance.systemd import Notifier, format_status
from gateway.auth import AclError, PasswordFileError
from gateway.bridge.manager import Bridges
from gateway.broker.server import Broker
from gateway.config import Config, ConfigError
from gateway.messages import Message
from gateway.store.db import StoreError

log = logging.getLogger("gateway")


class Gateway:
    """The running process: broker, admin API, notifier, and the config file to reload."""

    def __init__(self, config: Config, config_path: str | None,
                 overrides: dict[str, object]) -> None:
        self.config = config
        self.config_path = config_path
        self.overrides = overrides
        self.notifier = Notifier()
        self.broker = Broker(config)
        self.bridges = Bridges(self.broker)
        self.broker.services.append(self.bridges)
        self.stopping = asyncio.Event()
        self._servers: list[asyncio.Server] = []
        self.panel: Panel = NullPanel()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.notifier.start_watchdog()
        appliance = self.config.appliance
        self.panel = open_panel(led_pin=appliance.status_led_pin, button_pin=appliance.button_pin,
                                long_press_seconds=appliance.long_press_seconds,
                                on_status=self.report_status, on_shutdown=self.stopping.set,
                                loop=loop)
        try:
            self.broker.open_storage()
        except StoreError:
            self.panel.show(LedState.STORAGE_ERROR)
            raise
        if self.config.admin.enabled:  # before MQTT: a bound MQTT port means admin.json is current
            from gateway.admin import api as admin_api

            self._servers.append(await admin_api.start(self.broker, self.reload,
                                                        self.bridges.snapshot))
        await self.broker.listen()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._reload_on_signal()))
        addresses = ", ".join(f"{x.kind}://{x.address}" for x in self.config.listeners)
        log.info("edgeq serving on %s (data in %s)", addresses, self.config.data_dir)
        self.notifier.ready(self.status_line())
        status_task = loop.create_task(self._report_status())
        await self.stopping.wait()
        log.info("shutting down")
        self.notifier.stopping()
        status_task.cancel()
        for server in self._servers:
            server.close()
        await self.broker.stop()
        self.panel.close()
        await self.notifier.stop_watchdog()

    def status_line(self) -> str:
        return format_status(len(self.broker.live), self.broker.engine.backlog,
                             len(self.broker.engine.stats()))

    async def _report_status(self) -> None:
        """Every 2 s: systemd STATUS= and the LED pattern."""
        threshold = self.config.appliance.backlog_threshold
        while True:
            self.notifier.status(self.status_line())
            self.panel.show(led_state(storage_ok=self.broker.committer.failed is None,
                                      backlog=self.broker.engine.backlog,
                                      threshold=threshold or None))
            await asyncio.sleep(2)

    def report_status(self) -> None:
        """Short button press: the status to the log and to `$SYS/broker/status`."""
        line = self.status_line()
        log.info("status: %s", line)
        self.broker.publish(Message("$SYS/broker/status", line.encode(), 0, True, {}, "",
                                    self.broker.clock()))

    async def reload(self) -> str:
        """Re-read the config file, password file, ACL and queue definitions; the config's
        source. Raises ConfigError (`FILE:LINE: reason`, checked as `edgeq check-config` does)
        and keeps everything running as it was when any of the files is refused."""
        self.notifier.reloading()
        try:
            fresh = self._read_config()
        except ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e)
            raise
        else:
            self.broker.reload(fresh)
            log.info("configuration reloaded from %s", fresh.source)
            return fresh.source
        finally:
            self.notifier.ready(self.status_line())

    def _read_config(self) -> Config:
        from gateway.checkconfig import check  # the TLS, password and ACL checks, on reload only

        config, problems = check(self.config_path)
        if config is None or problems:
            raise ConfigError("; ".join(problems))
        return config_mod.with_overrides(config, **self.overrides)  # type: ignore[arg-type]

    async def _reload_on_signal(self) -> None:
        """SIGHUP: a refusal is already logged by `reload`; nobody else is there to tell."""
        with contextlib.suppress(ConfigError):
            await self.reload()


def serve(config: Config, config_path: str | None, overrides: dict[str, object]) -> int:
    """Run until stopped; 0 on a clean stop, 1 with one log line when it cannot start. The
    data directory exists and the caller holds its lock (`gateway.datadir.lock_data_dir`)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> int:
        try:
            await Gateway(config, config_path, overrides).run()
        except (ConfigError, StoreError, PasswordFileError, AclError) as e:
            log.error("%s", e)
            return 1
        return 0

    return asyncio.run(main())
