"""A minimal HTTP/1.1 server on h11 (sans-IO) and asyncio streams, for the admin API.

One request per connection turn, JSON in and out, no keep-alive subtleties: the admin API is
for a CLI and a TUI polling once a second, not for browsers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HttpError(400, "the request body is not valid JSON") from None


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(value, indent=1).encode() + b"\n")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]


async def serve(host: str, port: int, handler: Handler) -> asyncio.Server:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _one_connection(reader, writer, handler)
        except (ConnectionError, asyncio.IncompleteReadError, h11.ProtocolError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(on_client, host, port)


async def _one_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          handler: Handler) -> None:
    conn = h11.Connection(h11.SERVER)
    while True:
        request = await _read_request(conn, reader)
        if request is None:
            return
        try:
            response = await handler(request)
        except HttpError as e:
            response = Response.json({"error": str(e)}, e.status)
        headers = [("content-type", response.content_type),
                   ("content-length", str(len(response.body))), *response.headers]
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
        writer.write(conn.send(h11.Data(data=response.body)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return
        conn.start_next_cycle()


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
    request: Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and request is None:
                return None
            continue
        if isinstance(event, h11.Request):
            target = event.target.decode()
            path, _, query = target.partition("?")
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            request = Request(event.method.decode(), path, query, headers)
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise h11.RemoteProtocolError("request body too large")
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            request.body = bytes(body)
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None
