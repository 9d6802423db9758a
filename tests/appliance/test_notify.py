"""sd_notify over a real unix datagram socket bound as NOTIFY_SOCKET, as systemd would."""

from __future__ import annotations

import asyncio
import itertools
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.appliance.systemd import Notifier, _socket_send, format_status, watchdog_interval


@dataclass
class NotifySocket:
    """What systemd's end of NOTIFY_SOCKET receives, with arrival times."""

    path: str
    sock: socket.socket
    received: list[tuple[float, str]] = field(default_factory=list)

    def receive_forever(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self.received.append((time.monotonic(), data.decode()))

    def messages(self) -> list[str]:
        return [m for _, m in self.received]

    def times_of(self, message: str) -> list[float]:
        return [t for t, m in self.received if m == message]


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    # A short directory: unix socket paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="sdn") as tmp:
        path = str(Path(tmp) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        receiver = NotifySocket(path, sock)
        thread = threading.Thread(target=receiver.receive_forever, daemon=True)
        thread.start()
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        yield receiver
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(2)


def wait_for(condition: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_ready_status_reloading_stopping_arrive(notify_socket: NotifySocket) -> None:
    notifier = Notifier()
    notifier.ready(format_status(clients=0, backlog=0))
    notifier.status(format_status(clients=3, backlog=120, queues=2))
    notifier.reloading()
    notifier.ready()
    notifier.stopping()
    wait_for(lambda: len(notify_socket.received) == 5)
    messages = notify_socket.messages()
    assert messages[0] == "READY=1\nSTATUS=0 clients, backlog 0 messages"
    assert messages[1] == "STATUS=3 clients, 2 queues, backlog 120 messages"
    assert messages[2].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert messages[3:] == ["READY=1", "STOPPING=1"]


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_the_datagram_fallback_without_systemd_python(notify_socket: NotifySocket) -> None:
    Notifier(send=_socket_send).ready("up")
    wait_for(lambda: notify_socket.received)
    assert notify_socket.messages() == ["READY=1\nSTATUS=up"]


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None


def test_a_blocked_event_loop_stops_the_watchdog_pings(
        notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # pings every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    block: list[float] = []

    async def serve() -> None:
        notifier = Notifier()
        assert notifier.start_watchdog() is not None
        await asyncio.sleep(0.3)
        block.append(time.monotonic())
        time.sleep(0.5)  # a synchronous call hogging the loop
        block.append(time.monotonic())
        await asyncio.sleep(0.3)
        await notifier.stop_watchdog()

    asyncio.run(serve())
    time.sleep(0.05)
    pings = notify_socket.times_of("WATCHDOG=1")
    start, end = block
    assert len([t for t in pings if t < start]) >= 4
    assert [t for t in pings if start + 0.02 < t < end] == []
    assert len([t for t in pings if t > end]) >= 4
    assert max(b - a for a, b in itertools.pairwise(pings)) >= 0.45
