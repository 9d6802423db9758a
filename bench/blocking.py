"""A blocking one-socket MQTT client for set-up steps and readiness probes (not for load)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from bench import wire


class BlockingClient:
    """CONNECT on construction; packets read one at a time with a deadline."""

    def __init__(self, port: int, client_id: str, *, version: int = wire.V311, clean: bool = True,
                 keepalive: int = 60, receive_maximum: int | None = None,
                 session_expiry: int | None = None, timeout: float = 10.0) -> None:
        self.version = version
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.early = b""  # packets that arrived before the SUBACK, kept for the load client
        self.sock.sendall(wire.connect(client_id, version=version, clean=clean,
                                       keepalive=keepalive, receive_maximum=receive_maximum,
                                       session_expiry=session_expiry))
        code = wire.connack_code(self.read_packet())
        if code != 0:
            self.sock.close()
            raise wire.ProtocolError(f"CONNECT {client_id!r} refused with code {code:#04x}")

    def read_packet(self) -> wire.Packet:
        deadline = time.monotonic() + self.timeout
        while True:
            got = wire.split_packet(self.buf, 0)
            if got is not None:
                pkt, end = got
                self.buf = self.buf[end:]
                return pkt
            if time.monotonic() > deadline:
                raise TimeoutError("no complete packet from the broker")
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("broker closed the connection")
            self.buf += data

    def subscribe(self, topic_filter: str, qos: int) -> None:
        self.sock.sendall(wire.subscribe(1, topic_filter, qos, version=self.version))
        pkt = self.read_packet()
        while pkt.kind != wire.SUBACK:  # queued messages may come first: keep them
            self.early += wire.packet((pkt.kind << 4) | pkt.flags, pkt.body)
            pkt = self.read_packet()
        codes = wire.suback_codes(pkt, self.version)
        if not codes or codes[0] >= 0x80:
            raise wire.ProtocolError(f"SUBSCRIBE {topic_filter!r} refused: {codes.hex()}")

    def detach(self) -> tuple[socket.socket, bytes]:
        """Hand the socket and any bytes already read to a load client."""
        sock, rest = self.sock, self.early + self.buf
        self.buf = self.early = b""
        return sock, rest

    def disconnect(self) -> None:
        try:
            self.sock.sendall(wire.DISCONNECT_PACKET)
        finally:
            self.sock.close()


def probe_ready(port: int, timeout: float, alive: Callable[[], bool]) -> bool:
    """True once the broker answers CONNECT with CONNACK 0.

    False after `timeout` seconds, or as soon as `alive()` says the process is gone.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            BlockingClient(port, "bench-probe", timeout=1.0).disconnect()
            return True
        except (OSError, TimeoutError, wire.ProtocolError):
            time.sleep(0.005)
    return False
