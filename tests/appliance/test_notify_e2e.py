"""`edgeq serve` under a fake systemd: the datagrams a real gateway sends on NOTIFY_SOCKET."""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.conftest import GatewayFactory
from tests.support.procs import free_port


class FakeSystemd:
    """Receives sd_notify datagrams; on READY=1 it checks at once that the port accepts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.port = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: list[tuple[float, str]] = []
        self.port_open_at_ready: bool | None = None
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while True:
            try:
                text = self.sock.recv(4096).decode()
            except OSError:
                return
            if "READY=1" in text.splitlines() and self.port_open_at_ready is None:
                self.port_open_at_ready = _accepts(self.port)
            self.messages.append((time.monotonic(), text))

    def lines(self, prefix: str) -> list[str]:
        return [line for _, m in self.messages for line in m.splitlines()
                if line.startswith(prefix)]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(2)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def fake_systemd() -> Iterator[FakeSystemd]:
    with tempfile.TemporaryDirectory(prefix="sdn") as tmp:
        fake = FakeSystemd(str(Path(tmp) / "notify"))
        yield fake
        fake.close()


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def publish_qos1(port: int, topic: str, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="producer",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for i in range(count):
        client.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_ready_watchdog_and_status_follow_the_backlog(
        fake_systemd: FakeSystemd, gateway_factory: GatewayFactory) -> None:
    fake_systemd.port = free_port()
    gateway = gateway_factory(
        config_text='[admin]\nenabled = false\n\n[[queues]]\nname = "jobs"\nfilter = "jobs/#"\n',
        port=fake_systemd.port,
        env={"NOTIFY_SOCKET": fake_systemd.path, "WATCHDOG_USEC": "400000"})
    assert wait_until(lambda: fake_systemd.port_open_at_ready is not None)
    assert fake_systemd.port_open_at_ready, "READY=1 arrived before the port accepted"

    assert wait_until(lambda: len(fake_systemd.lines("WATCHDOG=1")) >= 5, timeout=5)

    publish_qos1(gateway.port, "jobs/build", 7)
    assert wait_until(lambda: any(re.search(r"backlog 7 message", s)
                                  for s in fake_systemd.lines("STATUS=")), timeout=10), \
        fake_systemd.lines("STATUS=")

    assert gateway.stop() == 0
    assert fake_systemd.lines("STOPPING=1")
