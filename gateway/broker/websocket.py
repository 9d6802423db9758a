"""MQTT over WebSocket: a wsproto (sans-IO) adapter in front of the ordinary `Connection`.

The adapter accepts the HTTP upgrade on the configured path with the `mqtt` subprotocol,
unwraps binary frames into the MQTT byte stream, and wraps the connection's writes into
binary frames through a small transport facade.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from gateway.broker.connection import Connection


class _FramingTransport(asyncio.Transport):
    """What the MQTT connection sees: writes become WebSocket binary messages."""

    def __init__(self, outer: WebSocketProtocol, raw: asyncio.Transport) -> None:
        super().__init__()
        self._outer = outer
        self._raw = raw

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._outer.send_binary(bytes(data))

    def close(self) -> None:
        self._outer.close()

    def is_closing(self) -> bool:
        return self._raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    def abort(self) -> None:
        self._raw.abort()


class WebSocketProtocol(asyncio.Protocol):
    def __init__(self, inner: Connection, path: str) -> None:
        self.inner = inner
        self.path = path
        self.ws = WSConnection(ConnectionType.SERVER)
        self.raw: asyncio.Transport | None = None
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                self._handle(event)
        except (LocalProtocolError, RemoteProtocolError):
            self._abort()

    def _handle(self, event: object) -> None:
        assert self.raw is not None
        if isinstance(event, Request):
            if event.target.split("?")[0] != self.path:
                self.raw.write(self.ws.send(RejectConnection(status_code=404)))
                self.raw.close()
                return
            sub = "mqtt" if "mqtt" in event.subprotocols else None
            self.raw.write(self.ws.send(AcceptConnection(subprotocol=sub)))
            self.open = True
            self.inner.connection_made(_FramingTransport(self, self.raw))
        elif isinstance(event, BytesMessage):
            self.inner.data_received(bytes(event.data))
        elif isinstance(event, Ping):
            self.raw.write(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self.ws.state.name == "REMOTE_CLOSING":
                self.raw.write(self.ws.send(event.response()))
            self.raw.close()
        else:
            self._abort()

    def send_binary(self, data: bytes) -> None:
        if self.raw is not None and not self.raw.is_closing() and self.open:
            self.raw.write(self.ws.send(BytesMessage(data=data)))

    def close(self) -> None:
        if self.raw is not None and not self.raw.is_closing():
            if self.open:
                with contextlib.suppress(LocalProtocolError):
                    self.raw.write(self.ws.send(CloseConnection(code=1000)))
            self.raw.close()

    def _abort(self) -> None:
        if self.raw is not None:
            self.raw.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
