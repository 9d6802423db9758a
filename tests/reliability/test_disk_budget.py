"""Disk as a budget (storage.max_disk_bytes, storage.min_free_bytes): at the limit QoS 1/2
publishes are refused with 0x97 (3.1.1: disconnected without PUBACK), nothing acknowledged is
lost, and service resumes by itself once space is freed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, Publish
from gateway.mqtt.reasons import Reason
from tests.queues.e2e import Admin, wait_until
from tests.reliability.conftest import Tmpfs, assert_no_crash_in_log
from tests.support.clients import RawClient, ServerClosed, connected
from tests.support.procs import GatewayProcess

Gateways = Callable[..., GatewayProcess]


def fill(port: int, topic: str, limit: int = 5000) -> list[bytes]:
    """10 KB QoS 1 publishes until one is refused with 0x97: the acknowledged payloads."""
    acked: list[bytes] = []
    with connected(port, f"filler-{time.monotonic_ns()}", MQTT_5) as producer:
        for i in range(limit):
            payload = f"{i:08d}".encode().ljust(10_000, b".")
            ack = producer.publish(topic, payload, qos=1, packet_id=i % 65535 + 1)
            assert isinstance(ack, PubAck)
            if ack.reason_code:
                assert ack.reason_code == Reason.QUOTA_EXCEEDED
                return acked
            acked.append(payload)
    raise AssertionError(f"{limit} messages stored: the budget was never reached")


def accepted(port: int, topic: str) -> bool:
    with connected(port, f"probe-{time.monotonic_ns()}", MQTT_5) as producer:
        ack = producer.publish(topic, b"after", qos=1)
        assert isinstance(ack, PubAck)
        return ack.reason_code == 0


def assert_311_producer_is_disconnected_without_ack(port: int, topic: str) -> None:
    with connected(port, f"old-{time.monotonic_ns()}", MQTT_311) as producer:
        producer.send_packet(Publish(topic, b"not stored", 1, False, False, 1))
        with pytest.raises(ServerClosed):
            producer.read(5)


def test_at_max_disk_bytes_publishes_get_0x97_and_resume_once_drained(
        tmp_path: Path, gateways: Gateways) -> None:
    gw = gateways(tmp_path / "var", "[storage]\nmax_disk_bytes = 1048576\n")
    with RawClient(gw.port, MQTT_311) as device:
        device.connect("device", clean_start=False)
        device.subscribe("d/cmd", qos=1)
        device.disconnect()
    acked = fill(gw.port, "d/cmd")
    assert 20 < len(acked) < 110
    assert_311_producer_is_disconnected_without_ack(gw.port, "d/cmd")
    assert "edgeq_store_disk_full 1" in Admin(gw).metrics()
    assert len([x for x in gw.log().splitlines() if "store at its disk budget" in x]) == 1
    with RawClient(gw.port, MQTT_311) as device:
        assert device.connect("device", clean_start=False).session_present
        assert [device.receive().payload for _ in acked] == acked  # nothing acked is lost
        device.expect_silence(0.3)
        device.disconnect()
    wait_until(lambda: accepted(gw.port, "d/cmd"), 5.0, "publishes to be accepted again")
    assert "store below its disk budget again" in gw.log()
    assert_no_crash_in_log(gw)


def test_below_the_free_space_reserve_publishes_get_0x97_until_space_is_freed(
        tmpfs: Callable[[str], Tmpfs], gateways: Gateways) -> None:
    disk = tmpfs("24m")
    ballast = disk.path / "ballast"
    ballast.write_bytes(b"\0" * 8 * 1024 * 1024)  # freed later, as an operator would clean up
    gw = gateways(disk.path / "var", """
[storage]
min_free_bytes = 8388608

[[queues]]
filter = "q/#"
name = "q"
""")
    acked = fill(gw.port, "q/x")
    assert len(acked) > 50
    assert "store write failed" not in gw.log()  # refused before the disk itself filled
    ballast.unlink()
    wait_until(lambda: accepted(gw.port, "q/x"), 5.0, "publishes to be accepted again")
    with connected(gw.port, "drainer", MQTT_311) as consumer:
        consumer.subscribe("$q/q/#", qos=1)
        assert [consumer.receive().payload for _ in acked] == acked
    assert_no_crash_in_log(gw)
