"""`/` filters the queues by name as you type, `s` sorts by the next column, `S` reverses:
against a real gateway, by keys only."""

from __future__ import annotations

from tests.tui.conftest import Gateway, live_app, scenario, until
from tests.tui.test_live import cell
from tui.app import TopApp
from tui.widgets.queues_table import QueuesTable


def names(app: TopApp) -> list[str]:
    return [q.name for q in app.query_one(QueuesTable).rows_shown]


def state(app: TopApp) -> str:
    return str(app.query_one("#view-state").render())


@scenario
async def test_filter_narrows_the_table_and_escape_clears_it(queue_gateway: Gateway) -> None:
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: names(app) == ["jobs", "spare"], what="both queues")
        await pilot.press("slash", "s", "p")
        assert names(app) == ["spare"]
        assert state(app) == 'filter "sp": 1 of 2 queues'
        await pilot.press("q")  # typed into the filter, it does not quit
        assert app.is_running and names(app) == []
        await pilot.press("backspace", "enter")  # keep "sp"; the table has the keys again
        assert app.focused is app.query_one(QueuesTable)
        await pilot.pause(0.5)  # refreshes keep the filter
        assert names(app) == ["spare"]
        await pilot.press("slash", "escape")
        assert names(app) == ["jobs", "spare"] and state(app) == ""


@scenario
async def test_sort_by_the_next_column_and_reverse(queue_gateway: Gateway) -> None:
    queue_gateway.publish("spare/x", 3)
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: cell(app, "spare", "depth") == "3", what="depth 3")
        assert names(app) == ["jobs", "spare"]
        await pilot.press("s", "s")  # name -> type -> depth
        assert state(app) == "sorted by depth ↓"
        assert names(app) == ["spare", "jobs"]
        await pilot.press("S")
        assert state(app) == "sorted by depth ↑" and names(app) == ["jobs", "spare"]


@scenario
async def test_hide_empty_queues(queue_gateway: Gateway) -> None:
    queue_gateway.publish("jobs/x", 1)
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: cell(app, "jobs", "depth") == "1", what="depth 1")
        await pilot.press("e")
        assert names(app) == ["jobs"] and state(app) == "empty queues hidden · 1 of 2 queues"
        await pilot.press("e")
        assert names(app) == ["jobs", "spare"] and state(app) == ""
