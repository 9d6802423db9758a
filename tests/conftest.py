"""Fixtures shared by the whole suite: real processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import GatewayProcess, MosquittoProcess

GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways: `gateway_factory(config_text="", extra_args=[...])`; stopped after."""
    started: list[GatewayProcess] = []

    def make(config_text: str = "", **kwargs: object) -> GatewayProcess:
        gw = GatewayProcess(data_dir=tmp_path / f"var{len(started)}", config_text=config_text,
                            **kwargs)  # type: ignore[arg-type]
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> GatewayProcess:
    """One running edgeq with the embedded default config on a free port."""
    return gateway_factory()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """Debian's mosquitto on a free port (for bridge tests and comparisons)."""
    m = MosquittoProcess(workdir=tmp_path / "mosquitto").start()
    yield m
    m.stop()
