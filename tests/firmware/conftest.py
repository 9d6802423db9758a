"""Fixtures for the firmware tests: staged firmware trees and emulated boards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.harness import Device, ensure_node_modules, stage_firmware

DeviceFactory = Callable[..., Device]


@pytest.fixture(scope="session")
def firmware_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """device_fw/ as `edgeq device deploy --source` would copy it to a board."""
    ensure_node_modules()
    return stage_firmware(tmp_path_factory.mktemp("fw-source"))


@pytest.fixture(scope="session")
def compiled_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """device_fw/ as `edgeq device deploy` copies it: modules precompiled with mpy-cross."""
    ensure_node_modules()
    return stage_firmware(tmp_path_factory.mktemp("fw-compiled"), compiled=True)


@pytest.fixture
def device_factory(firmware_tree: Path, tmp_path: Path) -> Iterator[DeviceFactory]:
    """Make emulated boards: `device_factory(config_dict, tree=...)`; all powered off after.

    Every board must have fed its watchdog in time, whatever the scenario.
    """
    made: list[Device] = []

    def make(config: dict[str, Any], *, tree: Path | None = None) -> Device:
        dev = Device(tree=tree or firmware_tree, config=config,
                     workdir=tmp_path / f"board{len(made)}")
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.kill()
    for dev in made:
        late = dev.hw.watchdog_expiries()
        assert not late, f"watchdog fed too late (a board would have reset): {late}"
