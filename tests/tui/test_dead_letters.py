"""The dead-letter screen against a real gateway: dead letters listed with why they died and
after how many deliveries, one peeked in full (text, JSON, hex), replayed into their queue
and purged, each destructive key confirmed first."""

from __future__ import annotations

import time

import pytest
from textual.pilot import Pilot

from gateway.mqtt.packets import MQTT_5
from tests.conftest import GatewayFactory
from tests.queues.e2e import publish
from tests.queues.test_dead_letters_e2e import kill_all
from tests.support.procs import free_port
from tests.tui.conftest import Gateway, live_app, scenario, until
from tui.app import TopApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.messages import MessagesScreen, MessagesTable
from tui.screens.peek import PeekScreen
from tui.widgets.queues_table import QueuesTable

CONFIG = """
[[queues]]
filter = "work/#"
name = "work"
max_deliveries = 2
"""
JOB = '{"job": 7, "image": "cam-2/0001.png"}'


@pytest.fixture
def dead_gateway(gateway_factory: GatewayFactory) -> Gateway:
    """Two messages of `work`, each rejected twice by its consumer: two dead letters."""
    process = gateway_factory(config_text=CONFIG,
                              extra_args=["--admin", f"127.0.0.1:{free_port()}"])
    publish(process.port, "work/cam-2", JOB, b"\x89PNG\r\n\x1a\n\x00", version=MQTT_5,
            properties={"content_type": "application/json"})
    kill_all(process.port, "work", 4)
    gateway = Gateway(process)
    deadline = time.monotonic() + 5
    while gateway.admin().queue("work")["stats"]["dead_lettered"] < 2:
        assert time.monotonic() < deadline, "no dead letters"
        time.sleep(0.05)
    return gateway


def row(table: MessagesTable, i: int) -> list[str]:
    return [str(c).strip() for c in table.get_row_at(i)]


async def open_dead_letters(app: TopApp, pilot: Pilot[int]) -> MessagesTable:
    """Enter on the `$dlq/work` row of the queues table: its dead letters."""
    table = app.query_one(QueuesTable)
    await until(pilot, lambda: "$dlq/work" in [q.name for q in table.rows_shown],
                what="the dead-letter queue")
    table.move_cursor(row=[q.name for q in table.rows_shown].index("$dlq/work"), animate=False)
    await pilot.press("enter")
    assert isinstance(app.screen, MessagesScreen)
    messages = app.screen.query_one(MessagesTable)
    await until(pilot, lambda: messages.row_count == 2, what="two dead letters")
    return messages


@scenario
async def test_dead_letters_show_reason_and_the_real_delivery_count(
        dead_gateway: Gateway) -> None:
    app = live_app(dead_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        messages = await open_dead_letters(app, pilot)
        first = row(messages, 0)
        assert first[:4] == ["1", "work/cam-2", "max_deliveries", "2"]
        assert "Dead letters of work ($dlq/work): 2 messages" in str(
            app.screen.query_one("#messages-summary").render())


@scenario
async def test_peek_shows_topic_properties_and_payload_as_json_text_and_hex(
        dead_gateway: Gateway) -> None:
    app = live_app(dead_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dead_letters(app, pilot)
        await pilot.press("enter")
        assert isinstance(app.screen, PeekScreen)
        peek = app.screen
        await until(pilot, lambda: peek.message is not None, what="the whole message")
        header = str(peek.query_one("#peek-header").render())
        assert "topic         work/cam-2" in header
        assert "died          max_deliveries in work after 2 deliveries" in header
        assert "content type  application/json" in header
        assert "user prop     x-death-reason=max_deliveries" in header
        payload = peek.query_one("#peek-payload")
        assert peek.view == "json" and '  "job": 7,' in str(payload.render())
        await pilot.press("h")
        assert "0000  7b 22 6a 6f 62 22" in str(payload.render())
        await pilot.press("t")
        assert str(payload.render()) == JOB
        await pilot.press("escape", "down", "enter")
        assert isinstance(app.screen, PeekScreen)
        binary = app.screen
        await until(pilot, lambda: binary.message is not None, what="the binary message")
        assert binary.view == "hex"
        assert "|.PNG....." in str(binary.query_one("#peek-payload").render())
        await pilot.press("t")
        assert "\\r" in str(binary.query_one("#peek-payload").render())  # escaped, not sent


@scenario
async def test_replay_moves_dead_letters_back_after_confirmation(dead_gateway: Gateway) -> None:
    app = live_app(dead_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dead_letters(app, pilot)
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, MessagesScreen)
        await pilot.press("R", "y")
        work = dead_gateway.admin()
        await until(pilot, lambda: work.queue("work")["stats"]["depth"] == 2,
                    what="the dead letters back in work")
        assert work.queue("$dlq/work")["stats"]["depth"] == 0


@scenario
async def test_purge_drops_the_dead_letters_after_confirmation(dead_gateway: Gateway) -> None:
    app = live_app(dead_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        messages = await open_dead_letters(app, pilot)
        await pilot.press("P")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: messages.row_count == 0, what="the list emptied")
        admin = dead_gateway.admin()
        assert admin.queue("$dlq/work")["stats"]["depth"] == 0
        assert admin.queue("work")["stats"]["depth"] == 0


@scenario
async def test_replay_one_dead_letter_from_its_peek(dead_gateway: Gateway) -> None:
    app = live_app(dead_gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        messages = await open_dead_letters(app, pilot)
        await pilot.press("down", "enter")  # the binary one, second oldest
        assert isinstance(app.screen, PeekScreen)
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: messages.row_count == 1, what="one dead letter left")
        assert isinstance(app.screen, MessagesScreen)  # the peek closed with its message
        admin = dead_gateway.admin()
        back = admin.peek("work", 10, whole=True)
        assert [m["payload_base64"] for m in back] == ["iVBORw0KGgoA"]  # \x89PNG\r\n\x1a\n\x00
        assert row(messages, 0)[1] == "work/cam-2" and admin.peek("$dlq/work", 1)[0][
            "payload"] == JOB
