"""Storage health and per-queue limits against a real gateway: always on screen, red when the
store refuses publishes."""

from __future__ import annotations

from gateway.mqtt.packets import MQTT_5
from tests.conftest import GatewayFactory
from tests.queues.e2e import publish
from tests.queues.test_dead_letters_e2e import kill_all
from tests.support.procs import free_port
from tests.tui.conftest import Gateway, live_app, scenario, until
from tests.tui.test_live import cell
from tui.screens.clients import ClientsScreen
from tui.widgets.status import StorageLine

LIMITED = """
[[queues]]
filter = "jobs/#"
name = "jobs"
max_messages = 8

[[queues]]
filter = "work/#"
name = "work"
max_deliveries = 1
"""


def started(factory: GatewayFactory, config: str) -> Gateway:
    return Gateway(factory(config_text=config,
                           extra_args=["--admin", f"127.0.0.1:{free_port()}"]))


@scenario
async def test_storage_line_shows_files_disk_memory_and_paused_producers(
        gateway_factory: GatewayFactory) -> None:
    gateway = started(gateway_factory, LIMITED)
    app = live_app(gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        line = app.query_one(StorageLine)
        await until(pilot, lambda: "wal" in str(line.render()), what="the storage figures")
        text = str(line.render())
        assert text.startswith("db ") and "+wal " in text
        assert "(reserve 64M)" in text and "mem " in text and "/64M" in text
        assert text.endswith("paused 0")
        assert line.region.height == 1  # one line at 80 columns
        assert not line.has_class("-alert")
        await pilot.press("c")  # on every screen, not only the queues
        assert isinstance(app.screen, ClientsScreen)
        assert "wal" in str(app.screen.query_one(StorageLine).render())


@scenario
async def test_a_full_disk_turns_the_storage_line_red(gateway_factory: GatewayFactory) -> None:
    gateway = started(gateway_factory, "[storage]\nmax_disk_bytes = 1\n")
    app = live_app(gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        line = app.query_one(StorageLine)
        await until(pilot, lambda: "DISK FULL" in str(line.render()), what="disk full")
        assert line.has_class("-alert")


@scenario
async def test_fill_and_dead_lettered_per_queue(gateway_factory: GatewayFactory) -> None:
    gateway = started(gateway_factory, LIMITED)
    publish(gateway.process.port, "jobs/a", "1", "2")
    publish(gateway.process.port, "work/a", "w", version=MQTT_5)
    kill_all(gateway.process.port, "work", 1)  # rejected once: dead (max_deliveries 1)
    app = live_app(gateway)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: cell(app, "jobs", "fill") == "25%", what="2 of 8 = 25%")
        await until(pilot, lambda: cell(app, "work", "dead_lettered") == "1", what="1 dead")
        assert cell(app, "$dlq/work", "depth") == "1"
        assert cell(app, "work", "nacked") == ""  # left out at 80 columns
    app = live_app(gateway)
    async with app.run_test(size=(120, 30)) as pilot:  # wide: blocked and nacked as well
        await until(pilot, lambda: cell(app, "work", "nacked") == "1", what="1 nacked")
        assert cell(app, "jobs", "blocked") == "0"
        assert cell(app, "jobs", "bytes").endswith("B")  # topics and payloads
