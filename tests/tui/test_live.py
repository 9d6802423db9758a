"""`edgeq top` against a real gateway with real queues, driven by keys as a person would."""

from __future__ import annotations

import queue
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.tui.conftest import Gateway, live_app, off_loop, scenario, until
from tui.app import TopApp
from tui.screens.clients import ClientsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.create import CreateQueueScreen
from tui.screens.detail import ConsumersTable, QueueScreen
from tui.widgets.queues_table import QueuesTable
from tui.widgets.status import Banner


def cell(app: TopApp, queue: str, column: str) -> str:
    table = app.query_one(QueuesTable)
    if queue not in [q.name for q in table.rows_shown]:
        return ""
    columns = [str(c.key.value) for c in table.ordered_columns]
    if column not in columns:  # left out of a narrow terminal
        return ""
    column_index = columns.index(column)
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

        # The restarted gateway answers again (with the token it kept): the view follows.
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


@scenario
async def test_details_show_consumers_with_in_flight_and_acked(queue_gateway: Gateway) -> None:
    received: queue.Queue[int] = queue.Queue()
    worker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="worker-1",
                         protocol=mqtt.MQTTv5, manual_ack=True)
    worker.on_message = lambda c, u, m: received.put(m.mid)
    worker.connect("127.0.0.1", queue_gateway.process.port)
    worker.subscribe("$q/jobs/#", qos=1)
    worker.loop_start()
    try:
        await off_loop(lambda: queue_gateway.publish("jobs/a", 3))
        app = live_app(queue_gateway)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: cell(app, "jobs", "inflight") == "3", what="3 in flight")
            select(app, "jobs")
            await pilot.press("enter")
            assert isinstance(app.screen, QueueScreen)
            table = app.screen.query_one(ConsumersTable)
            await until(pilot, lambda: table.row_count == 1, what="the consumer")
            assert [str(c).strip() for c in table.get_row_at(0)][:4] == ["worker-1", "1", "3",
                                                                          "0"]

            for _ in range(2):  # the worker finishes two jobs
                worker.ack(received.get(timeout=5), 1)
            await until(pilot, lambda: [str(c).strip() for c in table.get_row_at(0)][2:4]
                        == ["1", "2"], what="1 in flight, 2 acked")
            # Its rate: the two acknowledgements over the seconds the screen has watched.
            rate = str(table.get_row_at(0)[4]).strip()
            assert rate != "…" and float(rate) > 0
            assert "acked/s: mean over the last 10s" in str(
                app.screen.query_one("#consumers-title").render())

            await pilot.press("escape", "c")
            assert isinstance(app.screen, ClientsScreen)
            clients = app.screen.query_one("#clients")
            await until(pilot, lambda: any("worker-1" in str(clients.get_row_at(i)[0])
                                           for i in range(clients.row_count)),
                        what="the worker among the clients")
    finally:
        worker.disconnect()
        worker.loop_stop()
