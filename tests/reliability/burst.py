"""Many raw MQTT connections from one thread: opened at once with non-blocking sockets and a
selector, CONNECT sent on each, every CONNACK awaited; then kept alive with PINGREQ."""

from __future__ import annotations

import selectors
import socket
import time

from gateway.mqtt import codec
from gateway.mqtt.packets import MQTT_311, Connect

CONNACK_OK = b"\x20\x02\x00\x00"
PINGREQ, PINGRESP = b"\xc0\x00", b"\xd0\x00"


def burst_connect(port: int, n: int, client_prefix: str, keepalive: int = 60,
                  timeout: float = 60) -> list[socket.socket]:
    """Open `n` connections at once, send CONNECT on each, wait for every CONNACK."""
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    pending: dict[socket.socket, bytes] = {}
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        pending[s] = codec.encode(Connect(f"{client_prefix}-{i}", MQTT_311, True, keepalive),
                                  MQTT_311)
        sel.register(s, selectors.EVENT_WRITE)
    acked = 0
    deadline = time.monotonic() + timeout
    buffers: dict[socket.socket, bytes] = {}
    try:
        while acked < n:
            assert time.monotonic() < deadline, f"only {acked} of {n} CONNACKs in {timeout}s"
            for key, events in sel.select(1.0):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                s = ready
                if events & selectors.EVENT_WRITE:
                    s.send(pending.pop(s))
                    sel.modify(s, selectors.EVENT_READ)
                elif events & selectors.EVENT_READ:
                    data = buffers.get(s, b"") + s.recv(16)
                    assert data, "the gateway closed a connection of the burst"
                    buffers[s] = data
                    if len(data) >= 4:
                        assert data[:4] == b"\x20\x02\x00\x00", data
                        acked += 1
                        sel.unregister(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        sel.close()
    for s in socks:
        s.setblocking(True)
    return socks


def ping_all(socks: list[socket.socket], timeout: float = 30) -> int:
    """PINGREQ on every socket; how many answered PINGRESP (a closed one does not)."""
    sel = selectors.DefaultSelector()
    answered = 0
    try:
        for s in socks:
            try:
                s.sendall(PINGREQ)
            except OSError:
                continue
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        waiting = len(sel.get_map())
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                s = ready
                try:
                    data = s.recv(16)
                except OSError:
                    data = b""
                if data == PINGRESP:
                    answered += 1
                sel.unregister(s)
                waiting -= 1
    finally:
        sel.close()
        for s in socks:
            s.setblocking(True)
    return answered
