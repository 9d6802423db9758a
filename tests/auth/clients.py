"""Clients for the end-to-end auth tests: paho-mqtt driven step by step, and raw 3.1.1 CONNECTs.

paho reports a 3.1.1 CONNACK return code translated to a 5.0 reason code, so the 3.1.1 tests
send byte-exact CONNECT packets instead (as Mosquitto's own black-box tests do).
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

TIMEOUT = 5.0


class Client:
    """A paho-mqtt 2.x client whose calls wait for the broker's answer and return its code."""

    def __init__(self, port: int, client_id: str, *, username: str | None = None,
                 password: str | None = None, version: int = 5) -> None:
        protocol = MQTTProtocolVersion.MQTTv5 if version == 5 else MQTTProtocolVersion.MQTTv311
        self.port = port
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=protocol, reconnect_on_failure=False)
        if username is not None:
            self.paho.username_pw_set(username, password)
        self._answers: dict[Any, Any] = {}
        self._events: dict[Any, threading.Event] = {}
        self.disconnected = threading.Event()
        self.paho.on_connect = lambda c, u, flags, rc, props: self._answer("connack", rc.value)
        self.paho.on_subscribe = lambda c, u, mid, rcs, props: self._answer(
            ("suback", mid), [rc.value for rc in rcs])
        self.paho.on_publish = lambda c, u, mid, rc, props: self._answer(("puback", mid),
                                                                         rc.value)
        self.paho.on_disconnect = lambda *args: self.disconnected.set()

    def _event(self, key: Any) -> threading.Event:
        return self._events.setdefault(key, threading.Event())

    def _answer(self, key: Any, value: Any) -> None:
        self._answers[key] = value
        self._event(key).set()

    def _wait(self, key: Any) -> Any:
        assert self._event(key).wait(TIMEOUT), f"no answer to {key!r}"
        return self._answers[key]

    def connect(self) -> int:
        """The CONNACK reason code (0 = accepted)."""
        self.paho.connect("127.0.0.1", self.port, keepalive=30)
        self.paho.loop_start()
        return int(self._wait("connack"))

    def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """The SUBACK reason code: the granted QoS, or >= 0x80."""
        _, mid = self.paho.subscribe(topic_filter, qos)
        return int(self._wait(("suback", mid))[0])

    def publish(self, topic: str, payload: bytes = b"x", qos: int = 1) -> int:
        """The PUBACK reason code (5.0)."""
        info = self.paho.publish(topic, payload, qos)
        return int(self._wait(("puback", info.mid)))

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connack_v311(port: int, client_id: str, username: str | None = None,
                 password: str | None = None) -> int:
    """Send one MQTT 3.1.1 CONNECT and return the CONNACK return code (0x00-0x05)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + _string(client_id)
    for field in (username, password):
        if field is not None:
            body += _string(field)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            assert chunk, "connection closed before CONNACK"
            connack += chunk
    assert connack[:2] == b"\x20\x02", connack
    return connack[3]
