"""Many idle MQTT connections from one process: open in batches, ping all, close all.

Connections are opened in batches no larger than a listen backlog and each batch waits for its
CONNACKs, so neither broker's accept queue overflows (which would turn into SYN retransmits
and measure the kernel, not the broker).
"""

from __future__ import annotations

import selectors
import socket
import time

from bench import wire

BATCH = 50
CONNACK_OK = b"\x20\x02\x00\x00"
PINGRESP = b"\xd0\x00"


def _read_exactly(socks: list[socket.socket], want: bytes, timeout: float) -> int:
    """How many of `socks` sent exactly `want` within `timeout` seconds."""
    sel = selectors.DefaultSelector()
    bufs: dict[int, bytes] = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s.fileno()] = b""
    ok, deadline = 0, time.monotonic() + timeout
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = bufs[sock.fileno()] + sock.recv(len(want))
            if len(data) < len(want) and data:
                bufs[sock.fileno()] = data
                continue
            ok += data == want
            del bufs[sock.fileno()]
            sel.unregister(sock)
    sel.close()
    return ok


def open_idle(port: int, count: int, keepalive: int, prefix: str = "idle") -> list[socket.socket]:
    """`count` connected MQTT 3.1.1 clients; raises if a CONNECT is not accepted."""
    socks: list[socket.socket] = []
    try:
        for start in range(0, count, BATCH):
            batch = [socket.create_connection(("127.0.0.1", port), timeout=10)
                     for _ in range(start, min(count, start + BATCH))]
            socks += batch
            for i, s in enumerate(batch):
                s.sendall(wire.connect(f"{prefix}-{start + i}", keepalive=keepalive))
            accepted = _read_exactly(batch, CONNACK_OK, 30)
            if accepted != len(batch):
                raise ConnectionError(f"{len(batch) - accepted} of {len(batch)} CONNECTs not "
                                      f"accepted after {len(socks) - len(batch)} connections")
    except BaseException:
        close_all(socks)
        raise
    return socks


def ping_all(socks: list[socket.socket]) -> int:
    """Send PINGREQ on every connection; how many answered PINGRESP."""
    alive = []
    for s in socks:
        try:
            s.sendall(wire.PINGREQ_PACKET)
            alive.append(s)
        except OSError:
            continue
    return _read_exactly(alive, PINGRESP, 30)


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            continue
