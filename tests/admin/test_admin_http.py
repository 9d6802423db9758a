"""The admin API under hostile HTTP, over raw sockets: slow or idle clients are cut off, the
connection count is capped, malformed credentials get 400/401, and no traceback is logged."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from gateway.auth.passwords import add_user
from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess

LIMITS = "[admin]\nrequest_timeout = 1.0\nmax_connections = 4\n"


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(LIMITS)


def admin_address(gw: GatewayProcess) -> tuple[str, int, str]:
    found = json.loads((gw.data_dir / "admin.json").read_text())
    host, port = found["url"].removeprefix("http://").rsplit(":", 1)
    return host, int(port), found["token"]


def raw(gw: GatewayProcess, data: bytes = b"") -> socket.socket:
    host, port, _ = admin_address(gw)
    sock = socket.create_connection((host, port), timeout=5)
    if data:
        sock.sendall(data)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    out = b""
    with sock:
        while chunk := sock.recv(65536):
            out += chunk
    return out


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else -1


def get(gw: GatewayProcess, auth: bytes) -> bytes:
    return answer(raw(gw, b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          b"Authorization: " + auth + b"\r\n\r\n"))


@pytest.mark.parametrize("partial", [b"", b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n",
                                     b"POST /api/v1/queues HTTP/1.1\r\nHost: x\r\n"
                                     b"Content-Length: 100\r\n\r\n{\"fil"],
                         ids=["idle", "headers", "body"])
def test_an_incomplete_request_is_cut_off_after_the_timeout(gateway: GatewayProcess,
                                                             partial: bytes) -> None:
    start = time.monotonic()
    reply = answer(raw(gateway, partial))
    assert 0.9 < time.monotonic() - start < 3.0
    assert reply == b"" if not partial else status(reply) == 408


def test_connections_beyond_the_cap_are_refused_and_the_api_recovers(
        gateway: GatewayProcess) -> None:
    _, _, token = admin_address(gateway)
    idle = [raw(gateway) for _ in range(4)]
    try:
        time.sleep(0.1)
        assert status(get(gateway, b"Bearer " + token.encode())) == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.1)
    assert status(get(gateway, b"Bearer " + token.encode())) == 200


@pytest.mark.parametrize("auth", [
    "Bearer tökén".encode(), b"Bearer \xff\xfe", b"Basic \xc3\xa9t\xc3\xa9",
    b"Basic !!!not-base64!!!", b"Basic " + base64.b64encode(b"\xff\xfe:pw"),
    b"Basic " + base64.b64encode(b"no-colon"), b"Bearer", b"Digest x", b"\x80"],
    ids=["utf8-token", "latin1-token", "utf8-basic", "bad-base64", "binary-user", "no-colon",
         "empty-bearer", "other-scheme", "junk"])
def test_malformed_credentials_get_401_and_no_traceback(gateway: GatewayProcess,
                                                        auth: bytes) -> None:
    assert status(get(gateway, auth)) == 401
    assert "Traceback" not in gateway.log()


@pytest.mark.parametrize("request_bytes", [
    b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n"],
    ids=["tls-hello", "binary-target", "huge-header"])
def test_malformed_requests_get_400_and_no_traceback(gateway: GatewayProcess,
                                                     request_bytes: bytes) -> None:
    assert status(answer(raw(gateway, request_bytes))) in (400, 431)
    assert "Traceback" not in gateway.log()


def test_basic_auth_hashing_does_not_stall_the_api(tmp_path: Path,
                                                   gateway_factory: GatewayFactory) -> None:
    passwd = tmp_path / "passwd"
    add_user(passwd, "alice", "alice-pw", create=True)
    gw = gateway_factory(f'[auth]\npassword_file = "{passwd}"\n[admin]\nusers = ["alice"]\n')
    _, _, token = admin_address(gw)
    wrong = b"Basic " + base64.b64encode(b"alice:wrong")
    replies: list[bytes] = []
    flood = [threading.Thread(target=lambda: replies.append(get(gw, wrong))) for _ in range(60)]
    for thread in flood:
        thread.start()
    start = time.monotonic()
    assert status(get(gw, b"Bearer " + token.encode())) == 200
    took = time.monotonic() - start
    for thread in flood:
        thread.join()
    assert took < 1.0, f"a token request waited {took:.2f} s behind Basic-auth hashing"
    assert {status(r) for r in replies} == {401}
    assert "login failed: user alice from 127.0.0.1 (client id admin API)" in gw.log()
