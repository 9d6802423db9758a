"""A flood of wrong passwords costs its sender, not everyone: a correct login stays quick, the
failures are logged (never the password) and counted."""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.auth.passwords import add_user
from tests.auth.clients import _remaining_length, _string, connack_v311
from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess

WRONG = "wrong-pw-5e1f"
FLOOD = 300
QUICK = 1.5  # seconds a correct login may take during the flood


@pytest.fixture
def gateway(tmp_path: Path, gateway_factory: GatewayFactory) -> GatewayProcess:
    passwd = tmp_path / "passwd"
    add_user(passwd, "alice", "alice-pw", create=True)
    add_user(passwd, "bob", "bob-pw")
    return gateway_factory(config_text=f'[auth]\nallow_anonymous = false\n'
                                       f'password_file = "{passwd}"\n')


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    body = (_string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30) + _string(client_id)
            + _string(username) + _string(password))
    return b"\x10" + _remaining_length(len(body)) + body


def flood(port: int, username: str, n: int) -> list[socket.socket]:
    """`n` CONNECTs with a wrong password, all sent before any answer is read."""
    socks = []
    for i in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(connect_packet(f"flood-{i}", username, WRONG))
        socks.append(sock)
    return socks


def answers(socks: list[socket.socket]) -> list[int]:
    codes = []
    for sock in socks:
        with sock:
            connack = sock.recv(4)
            codes.append(connack[3] if len(connack) == 4 else -1)
    return codes


def timed_login(port: int, username: str, password: str) -> tuple[int, float]:
    start = time.monotonic()
    code = connack_v311(port, f"{username}-{start}", username, password)
    return code, time.monotonic() - start


def test_a_correct_login_is_quick_during_a_wrong_password_flood(gateway: GatewayProcess) -> None:
    for wave in range(2):
        socks = flood(gateway.port, "alice", FLOOD)
        code, took = timed_login(gateway.port, "bob", "bob-pw")
        assert code == 0
        assert took < QUICK, f"wave {wave}: the correct login took {took:.2f} s"
        codes = answers(socks)
        assert set(codes) <= {0x03, 0x04}, codes  # server unavailable (busy), bad password
    log = gateway.log()
    assert "login failed: user alice from 127.0.0.1 (client id flood-" in log
    assert WRONG not in log


def test_an_attacked_user_is_refused_without_a_hash_until_the_backoff_ends(
        gateway: GatewayProcess) -> None:
    codes = [connack_v311(gateway.port, f"guess-{i}", "alice", WRONG) for i in range(8)]
    assert codes == [0x04] * 8
    start = time.monotonic()
    assert connack_v311(gateway.port, "alice-1", "alice", "alice-pw") == 0x04  # backing off
    assert time.monotonic() - start < 0.05 + 0.5  # refused at once, no hash
    assert connack_v311(gateway.port, "bob-1", "bob", "bob-pw") == 0
    assert "user alice from 127.0.0.1 (client id guess-4): bad user name or password; further " \
           "attempts refused for 1 s" in gateway.log()


def test_failed_logins_are_counted_in_prometheus(tmp_path: Path,
                                                  gateway_factory: GatewayFactory) -> None:
    passwd = tmp_path / "passwd"
    add_user(passwd, "alice", "alice-pw", create=True)
    gw = gateway_factory(config_text=f'[auth]\npassword_file = "{passwd}"\n')
    for i in range(7):
        assert connack_v311(gw.port, f"guess-{i}", "alice", WRONG) == 0x04
    url = (gw.data_dir / "admin.json").read_text().split('"url": "')[1].split('"')[0]
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "edgeq_logins_failed_total 5.0\n" in metrics, metrics
    assert "edgeq_logins_throttled_total 2.0\n" in metrics


def test_a_fleet_logging_in_at_once_with_one_user_is_never_busy(
        gateway: GatewayProcess) -> None:
    """Many devices of one user reconnecting together (one address, as behind a NAT) share one
    password verification instead of being told the server is busy."""
    results: list[int] = []

    def login(i: int) -> None:
        results.append(connack_v311(gateway.port, f"fleet-{i}", "alice", "alice-pw"))

    threads = [threading.Thread(target=login, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0] * 40
