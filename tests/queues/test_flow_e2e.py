"""Queue dispatch follows each consumer's drain (issue 16, item 3): a consumer that reads at its
own pace is never disconnected for the broker's own burst, at QoS 0 or with large messages."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.mqtt.packets import MQTT_311, Publish
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, wait_until
from tests.support.clients import connected
from tests.support.procs import GatewayProcess

CONFIG = """
[mqtt]
client_output_buffer = 1048576

[[queues]]
filter = "bulk/#"
name = "bulk"

[[queues]]
filter = "big/#"
name = "big"
max_deliveries = 2
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(data_dir=tmp_path_factory.mktemp("flow") / "var",
                             config_text=CONFIG).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def admin(gw: GatewayProcess) -> Admin:
    return Admin(gw)


def fill(gw: GatewayProcess, topic: str, count: int, size: int) -> None:
    """`count` QoS 1 messages of `size` bytes, pipelined from one producer."""
    with connected(gw.port, f"filler-{time.monotonic_ns()}", MQTT_311) as producer:
        for i in range(count):
            payload = i.to_bytes(4, "big") + bytes(size - 4)
            producer.send_packet(Publish(topic, payload, 1, False, False, i % 60000 + 1))
        for _ in range(count):
            producer.read()


def test_a_qos0_backlog_reaches_a_consumer_that_reads_at_its_pace(gw: GatewayProcess,
                                                                   admin: Admin) -> None:
    fill(gw, "bulk/x", 1000, 8192)  # 8 MB waiting, the output limit is 1 MB
    with connected(gw.port, "qos0-reader", MQTT_311) as reader:
        assert reader.subscribe("$queue/bulk", qos=0).reason_codes == [0]
        time.sleep(0.3)  # busy with something else for a moment, as real consumers are
        got = [int.from_bytes(reader.receive().payload[:4], "big") for _ in range(1000)]
        reader.expect_silence(0.2)
    assert got == list(range(1000))
    stats = admin.stats("bulk")
    assert (stats["depth"], stats["acked"]) == (0, 1000)
    assert "does not read its messages" not in gw.log()


def test_large_messages_reach_a_311_consumer_without_cycling(gw: GatewayProcess,
                                                             admin: Admin) -> None:
    fill(gw, "big/x", 30, 200_000)  # 6 MB; a window of 32 would be sent in one go
    with connected(gw.port, "big-reader", MQTT_311) as reader:
        reader.subscribe("$queue/big", qos=1)
        time.sleep(0.3)
        got = [reader.receive() for _ in range(30)]
        reader.expect_silence(0.2)
    assert [int.from_bytes(m.payload[:4], "big") for m in got] == list(range(30))
    assert not any(m.dup for m in got)
    wait_until(lambda: admin.stats("big")["depth"] == 0, 3, "every message acknowledged")
    stats = admin.stats("big")
    assert (stats["redelivered"], stats["dead_lettered"]) == (0, 0)


# ------------------------------------------------------------------------------ item 5

BUDGET = """
[storage]
memory_budget = 4194304

[[queues]]
filter = "heavy/#"
name = "heavy"
"""


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_refill_after_a_restart_respects_the_memory_budget(gateway_factory: GatewayFactory,
                                                           stop: str) -> None:
    gw = gateway_factory(BUDGET)
    fill(gw, "heavy/x", 400, 25_000)  # 10 MB on disk; the queue windows may hold 2 MB
    if stop == "SIGTERM":
        gw.stop()
    else:
        gw.kill()
    gw.start()
    admin = Admin(gw)
    assert admin.stats("heavy")["depth"] == 400
    time.sleep(1.2)  # a tick measures memory
    with connected(gw.port, "heavy-reader", MQTT_311) as reader:
        reader.subscribe("$queue/heavy", qos=1)
        got = [int.from_bytes(reader.receive().payload[:4], "big") for _ in range(400)]
    assert got == list(range(400))
    time.sleep(1.2)
    assert "memory budget reached" not in gw.log()
