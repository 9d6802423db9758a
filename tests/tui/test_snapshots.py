"""Screenshots of the main screens at 80x24 and 120x40, from fixed figures (see fixed.py).

The fixed source goes through the app's real refresh path (worker thread, snapshot, history);
each refresh is triggered by hand so that the sparklines always hold the same samples.
Update with `pytest tests/tui --snapshot-update`, then read the SVG diff before keeping it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.fixed import FRAMES, FixedSource
from tui.app import TopApp

SIZES = [(80, 24), (120, 40)]


def fixed_app(fail_after: int | None = None) -> TopApp:
    return TopApp(FixedSource(fail_after), lag_alert=30.0, interval=0)


async def refresh(pilot: Pilot[int], times: int) -> None:
    """`times` refreshes, each finished before the next, as the one-second timer would do.
    (A refresh's worker ends only after the event loop has applied its result.)"""
    app = pilot.app
    assert isinstance(app, TopApp)
    for _ in range(times):
        await app.workers.wait_for_complete()
        app.poll()
    await app.workers.wait_for_complete()
    await pilot.pause()


def then_press(*keys: str, refreshes: int = FRAMES - 1) -> Callable[[Pilot[int]], Any]:
    async def run_before(pilot: Pilot[int]) -> None:
        await refresh(pilot, refreshes)
        await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def sizes() -> Iterable[Any]:
    return [pytest.param(size, id=f"{size[0]}x{size[1]}") for size in SIZES]


@pytest.mark.parametrize("size", sizes())
def test_queues(snap_compare: Any, size: tuple[int, int]) -> None:
    """The live table with the telemetry queue over the lag alert, and the trend of images/+:
    the ten minutes the gateway had sampled when top attached, then one sample a refresh."""
    assert snap_compare(fixed_app(), terminal_size=size, run_before=then_press("down"))


@pytest.mark.parametrize("size", sizes())
def test_queue_details(snap_compare: Any, size: tuple[int, int]) -> None:
    """images/+ (the second row, under its dead-letter queue) with fill and all counters."""
    assert snap_compare(fixed_app(), terminal_size=size, run_before=then_press("down", "enter"))


@pytest.mark.parametrize("size", sizes())
def test_clients(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=then_press("c"))


def test_connection_lost(snap_compare: Any) -> None:
    """Three good refreshes, then the gateway stops answering."""
    assert snap_compare(fixed_app(fail_after=3), terminal_size=(80, 24),
                        run_before=then_press(refreshes=4))


def test_help(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=then_press("?"))


def test_purge_confirmation(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24),
                        run_before=then_press("down", "down", "down", "down", "down", "p"))


def test_new_queue_form(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24),
                        run_before=then_press("n", *"orders/+"))


@pytest.mark.parametrize("size", sizes())
def test_dead_letters(snap_compare: Any, size: tuple[int, int]) -> None:
    """Enter on the `$dlq/images/+` row (the first): its dead letters, reason and tries."""
    assert snap_compare(fixed_app(), terminal_size=size, run_before=then_press("enter"))


def test_peek_binary_dead_letter_as_hex(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24),
                        run_before=then_press("enter", "enter"))


def test_peek_json_dead_letter(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24),
                        run_before=then_press("enter", "down", "enter"))


def test_replay_confirmation(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24),
                        run_before=then_press("enter", "R"))


def test_filter_and_sort(snap_compare: Any) -> None:
    """`/` typed "li", then sorted by depth: the filter field and the view's state shown."""
    assert snap_compare(fixed_app(), terminal_size=(80, 24),
                        run_before=then_press("slash", "l", "i", "enter", "s", "s"))


def test_storage_trouble(snap_compare: Any) -> None:
    """The disk full, producers paused and the last commit failed: the storage line in red."""
    trouble = {"disk_full": True, "disk_free": 40 << 20, "producers_paused": 2,
               "store_error": "database or disk is full"}
    app = TopApp(FixedSource(storage=trouble), lag_alert=30.0, interval=0)
    assert snap_compare(app, terminal_size=(80, 24), run_before=then_press())
