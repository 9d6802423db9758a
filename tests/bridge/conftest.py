"""Fixtures for the bridge tests: a real upstream (Debian's mosquitto) and edgeq gateways
bridged to it, each on a free loopback port, with bounded waits only.

`upstreams(...)` starts a mosquitto (again on the same port, to simulate the uplink coming
back); `bridge_config(port, ...)` writes the `[[bridges]]` section; `admin` and `bridge_state`
read the gateway's admin API; `wait_until` polls a condition with a deadline.
"""

from __future__ import annotations

import getpass
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.client import AdminClient
from gateway.admin.endpoint import AdminError
from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess, MosquittoProcess, free_port

ADMIN_ANY_PORT = ["--admin", "127.0.0.1:0"]
UpstreamFactory = Callable[..., MosquittoProcess]


@pytest.fixture
def gateway_factory(gateway_factory: GatewayFactory) -> GatewayFactory:
    """The suite's factory with the admin API on a free port (the default port would collide
    with any other gateway running on this machine)."""
    def make(config_text: str = "", **kwargs: object) -> GatewayProcess:
        extra = list(kwargs.pop("extra_args", []))  # type: ignore[call-overload]
        return gateway_factory(config_text, extra_args=extra + ADMIN_ANY_PORT, **kwargs)
    return make


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[UpstreamFactory]:
    """Start mosquittos: `upstreams(port=..., extra_config=...)`; all stopped after the test."""
    started: list[MosquittoProcess] = []

    def make(port: int | None = None, extra_config: str = "") -> MosquittoProcess:
        # Started as root, mosquitto would become user `mosquitto`, which cannot read or write
        # under pytest's private tmp_path (password file, persistence): stay who we are.
        m = MosquittoProcess(workdir=tmp_path / "mosquitto", port=port or free_port(),
                             extra_config=f"user {getpass.getuser()}\n{extra_config}")
        started.append(m)
        return m.start()

    yield make
    for m in started:
        m.stop()


def bridge_config(port: int, *topics: str, sys_interval: float = 1, **options: Any) -> str:
    """A config with one bridge `up` to 127.0.0.1:`port`. `topics` are rule bodies such as
    `'pattern = "a/#"\\ndirection = "out"'`; `options` are extra `[[bridges]]` keys."""
    keys = {"name": "up", "address": f"127.0.0.1:{port}", "reconnect_min": 0.1,
            "reconnect_max": 0.5, "keepalive": 10, **options}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items())
    rules = "".join(f"\n[[bridges.topics]]\n{t}\n" for t in topics)
    return f"[mqtt]\nsys_interval = {sys_interval}\n\n[[bridges]]\n{body}\n{rules}"


def admin(gw: GatewayProcess, call: Callable[[AdminClient], Any], timeout: float = 5.0) -> Any:
    """`call` on an admin client found through the gateway's admin.json (retried while the
    admin API is still starting, or admin.json is a restarted gateway's old one)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(AdminClient.discover(data_dir=str(gw.data_dir)))
        except AdminError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def bridge_state(gw: GatewayProcess, name: str = "up") -> dict[str, Any]:
    records = {b["name"]: b for b in admin(gw, AdminClient.bridges)}
    return records[name]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0,
               what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_connected(gw: GatewayProcess, name: str = "up", timeout: float = 10.0) -> None:
    wait_until(lambda: bridge_state(gw, name)["connected"], timeout, f"bridge {name} to connect")


def reload(gw: GatewayProcess, config_text: str) -> None:
    """Rewrite the gateway's config file and SIGHUP it (what `systemctl reload` does)."""
    gw.config_path.write_text(config_text)
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGHUP)
