"""`edgeq top` against a real gateway with real queues, driven by keys as a person would."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import Gateway, live_app, off_loop, scenario, until
from tui.app import TopApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.create import CreateQueueScreen
from tui.widgets.queues_table import QueuesTable
from tui.widgets.status import Banner


def cell(app: TopApp, queue: str, column: str) -> str:
    table = app.query_one(QueuesTable)
    if queue not in [q.name for q in table.rows_shown]:
        return ""
    column_index = [str(c.key.value) for c in table.ordered_columns].index(column)
    return str(table.get_row(queue)[column_index]).strip()


def select(app: TopApp, queue: str) -> None:
    table = app.query_one(QueuesTable)
    table.move_cursor(row=[q.name for q in table.rows_shown].index(queue), animate=False)


def stats(gateway: Gateway, queue: str) -> dict[str, Any]:
    return next(q for q in gateway.admin().queues() if q["name"] == queue)


@scenario
async def test_table_shows_depth_and_lag_of_published_messages(queue_gateway: Gateway) -> None:
    queue_gateway.publish("jobs/a", 5)
    app = live_app(queue_gateway, lag_alert=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: cell(app, "jobs", "depth") == "5", what="depth 5")
        assert cell(app, "jobs", "lag_messages") == "5"
        assert cell(app, "spare", "depth") == "0"
        # No consumer: the oldest message ages, passes the 0.5 s alert and the row says so.
        await until(pilot, lambda: cell(app, "jobs", "name").startswith("! "), what="alert")
        assert cell(app, "jobs", "lag_seconds").endswith("s")
        assert not cell(app, "spare", "name").startswith("!")
        assert "1 lagging" in str(app.query_one("#status").render())


@scenario
async def test_purge_empties_the_queue_only_after_confirmation(queue_gateway: Gateway) -> None:
    queue_gateway.publish("jobs/a", 3)
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: cell(app, "jobs", "depth") == "3", what="depth 3")
        select(app, "jobs")
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # changed my mind
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.pause(0.5)
        assert (await off_loop(lambda: stats(queue_gateway, "jobs")))["depth"] == 3

        await pilot.press("p")
        await pilot.press("y")
        await until(pilot, lambda: cell(app, "jobs", "depth") == "0", what="depth 0")
        assert (await off_loop(lambda: stats(queue_gateway, "jobs")))["depth"] == 0


@scenario
async def test_connection_lost_is_shown_and_clears_when_the_gateway_returns(
        queue_gateway: Gateway) -> None:
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.query_one(Banner)
        await until(pilot, lambda: cell(app, "jobs", "depth") == "0", what="first figures")
        assert not banner.has_class("-lost")

        await off_loop(queue_gateway.process.stop)
        await until(pilot, lambda: banner.has_class("-lost"), what="the banner")
        assert "Connection lost" in str(banner.render())
        await until(pilot, lambda: banner.region.height > 0, what="the banner on screen")
        assert cell(app, "jobs", "depth") == "0"  # the last figures stay, marked stale

        # The restarted gateway has a new token in admin.json: the view follows it.
        await off_loop(queue_gateway.process.start)
        await until(pilot, lambda: not banner.has_class("-lost"), timeout=15,
                    what="the banner to clear")
        assert app.lost is None
        await until(pilot, lambda: banner.region.height == 0, what="the banner gone")


@scenario
async def test_create_and_delete_a_queue_from_the_keyboard(queue_gateway: Gateway) -> None:
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: cell(app, "jobs", "depth") == "0", what="first figures")
        await pilot.press("n")
        assert isinstance(app.screen, CreateQueueScreen)
        await pilot.press(*"orders/+", "tab", *"orders", "enter")
        await until(pilot, lambda: cell(app, "orders", "depth") == "0", what="the new queue")
        created = await off_loop(lambda: stats(queue_gateway, "orders"))
        assert created["filter"] == "orders/+"

        select(app, "orders")
        await pilot.press("d", "y")
        await until(pilot, lambda: cell(app, "orders", "depth") == "", what="deletion")
        names = await off_loop(lambda: [q["name"] for q in queue_gateway.admin().queues()])
        assert "orders" not in names


@scenario
async def test_create_form_shows_the_gateways_refusal(queue_gateway: Gateway) -> None:
    app = live_app(queue_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", *"bad/#/filter", "enter")
        label = app.screen.query_one("#create-error")
        await until(pilot, lambda: "refused" in str(label.render()), what="the refusal")
        assert isinstance(app.screen, CreateQueueScreen)  # still open, the input kept
        await pilot.press("escape")
        assert not isinstance(app.screen, CreateQueueScreen)
