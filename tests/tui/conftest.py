"""Fixtures for the TUI tests: a real gateway with queues and its admin API, and helpers to
wait for the app, which refreshes from worker threads."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from textual.pilot import Pilot

from gateway.admin.client import AdminClient
from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess, free_port
from tui.app import TopApp
from tui.source import AdminSource

P = ParamSpec("P")

QUEUES = """
[[queues]]
filter = "jobs/#"
name = "jobs"
dispatch = "least_inflight"

[[queues]]
filter = "spare/#"
name = "spare"
"""


@dataclass
class Gateway:
    """A running gateway and how to reach its admin API."""

    process: GatewayProcess

    def admin(self) -> AdminClient:
        """A client from `admin.json` (re-read: the token changes when the gateway restarts)."""
        found = json.loads((self.process.data_dir / "admin.json").read_text())
        return AdminClient(found["url"], found["token"])

    def source(self) -> AdminSource:
        return AdminSource(self.admin(), rediscover=self.admin)

    def publish(self, topic: str, count: int) -> None:
        """`count` QoS 1 messages, each acknowledged (so committed) before returning."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic()}")
        client.connect("127.0.0.1", self.process.port)
        client.loop_start()
        try:
            for i in range(count):
                client.publish(topic, f"message {i}".encode(), qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()


@pytest.fixture
def queue_gateway(gateway_factory: GatewayFactory) -> Gateway:
    process = gateway_factory(config_text=QUEUES,
                              extra_args=["--admin", f"127.0.0.1:{free_port()}"])
    deadline = time.monotonic() + 10
    while not (process.data_dir / "admin.json").exists():
        assert time.monotonic() < deadline, "the gateway wrote no admin.json"
        time.sleep(0.05)
    return Gateway(process)


def live_app(gateway: Gateway, **kwargs: float) -> TopApp:
    """The app as `edgeq top` runs it, refreshing five times a second to keep tests short."""
    return TopApp(gateway.source(), interval=kwargs.pop("interval", 0.2), **kwargs)


async def until(pilot: Pilot[int], condition: Callable[[], bool], timeout: float = 10.0,
                what: str = "the condition") -> None:
    """Let the app run until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def off_loop(call: Callable[[], object]) -> object:
    """Run a blocking call (a paho publish, an admin request, stopping the gateway) without
    freezing the app under test."""
    return await asyncio.get_running_loop().run_in_executor(None, call)


def scenario(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run
