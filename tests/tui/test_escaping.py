"""Names a client chose are drawn harmlessly: control characters show as escapes, never reach
the terminal (no ESC sequences, no extra lines)."""

from __future__ import annotations

from gateway.mqtt.packets import MQTT_5
from tests.support.clients import connected
from tests.tui.conftest import Gateway, live_app, off_loop, scenario, until
from tui.screens.clients import ClientsScreen
from tui.widgets.queues_table import QueuesTable

HOSTILE_FILTER = "evil\x1b[2J\x1b[31m/#"
HOSTILE_ID = "dev\nice\x1b]0;pwned\x07"


def shown(table: QueuesTable | object, row: int) -> str:
    return " ".join(str(cell) for cell in table.get_row_at(row))  # type: ignore[attr-defined]


@scenario
async def test_a_hostile_queue_name_and_client_id_are_drawn_escaped(
        queue_gateway: Gateway) -> None:
    await off_loop(lambda: queue_gateway.admin().create({"filter": HOSTILE_FILTER}))
    with connected(queue_gateway.process.port, HOSTILE_ID, MQTT_5):
        app = live_app(queue_gateway)
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.query_one(QueuesTable)
            await until(pilot, lambda: table.row_count == 3, what="three queues")
            rows = [shown(table, i) for i in range(table.row_count)]
            assert any("evil\\x1b[2J\\x1b[31m/#" in row for row in rows), rows
            assert not any("\x1b" in row for row in rows)

            await pilot.press("c")
            assert isinstance(app.screen, ClientsScreen)
            clients = app.screen.query_one("#clients")
            await until(pilot, lambda: clients.row_count == 1, what="the client")
            row = shown(clients, 0)
            assert "dev\\nice\\x1b]0;pwned\\x07" in row
            assert not any(c in row for c in "\x1b\n\x07")
