"""Fixtures for the broker's end-to-end tests.

Most tests share one gateway for the whole session (starting a process costs ~0.6 s); each test
uses its own topics and client ids (`tag`), and `broker` checks after every test that the
shared process is still alive — so every bad-input test also proves the broker survived it.
Tests that restart or kill a gateway share `restartable`; tests that need another configuration
get their own through `gateway` or `gateway_factory`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess

# Every gateway here gets an admin API on a free port: the default 127.0.0.1:18083 would make
# the shared gateway, a per-test gateway and any other suite running on this machine collide.
ADMIN_ANY_PORT = ["--admin", "127.0.0.1:0"]

SHARED_CONFIG = """
[mqtt]
sys_interval = 1
max_packet_size = 65536
topic_alias_maximum = 4
"""


# Limits that would get in the way of the other tests, in a gateway of their own.
TIGHT_CONFIG = """
[mqtt]
connect_timeout = 0.5
max_keepalive = 30
receive_maximum = 2
"""


@pytest.fixture
def gateway_factory(gateway_factory: GatewayFactory) -> GatewayFactory:
    """The suite's factory, with the admin API on a free port unless `--admin` is given."""
    def make(config_text: str = "", **kwargs: object) -> GatewayProcess:
        extra = list(kwargs.pop("extra_args", []))  # type: ignore[call-overload]
        if "--admin" not in extra:
            extra += ADMIN_ANY_PORT
        return gateway_factory(config_text, extra_args=extra, **kwargs)
    return make


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> GatewayProcess:
    """A gateway of its own for this test (restart, kill), with `$SYS` every second."""
    return gateway_factory("[mqtt]\nsys_interval = 1\n")


@pytest.fixture(scope="session")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(data_dir=tmp_path_factory.mktemp("shared") / "var",
                        config_text=SHARED_CONFIG, extra_args=list(ADMIN_ANY_PORT))
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A second shared gateway, for the tests that restart or SIGKILL it: each leaves it
    running again, and they use their own client ids, so they can share it."""
    gw = GatewayProcess(data_dir=tmp_path_factory.mktemp("restartable") / "var",
                        extra_args=list(ADMIN_ANY_PORT))
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def tight_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A shared gateway with TIGHT_CONFIG."""
    gw = GatewayProcess(data_dir=tmp_path_factory.mktemp("tight") / "var",
                        config_text=TIGHT_CONFIG, extra_args=list(ADMIN_ANY_PORT))
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def broker(shared_gateway: GatewayProcess) -> Iterator[GatewayProcess]:
    """The shared gateway; the test fails if the process died during it."""
    yield shared_gateway
    assert shared_gateway.proc is not None and shared_gateway.proc.poll() is None, (
        f"the broker died:\n{shared_gateway.log()[-3000:]}")


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, for its topics and client ids on the shared broker."""
    name = re.sub(r"[^0-9A-Za-z_-]+", "-", request.node.name)
    if len(name) <= 60:
        return name
    return f"{name[:51]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
