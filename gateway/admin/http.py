"""A minimal HTTP/1.1 server on h11 (sans-IO) and asyncio streams, for the admin API.

One request per connection turn, JSON in and out, no keep-alive subtleties: the admin API is
for a CLI and a TUI polling once a second, not for browsers.

It is also reachable by anything on the host, so it defends itself: a client has
`request_timeout` seconds to send a whole request and to read the answer (idle and slow
sockets are closed, 408 when part of a request came), at most `max_connections` are open at
once (one more gets 503), malformed HTTP gets 400 (431 for oversized headers), and a bug in a
route gets 500 and one log line: never a traceback, never a silently dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
MAX_HEADERS = 16 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-case; values decoded as Latin-1 (any byte is kept)
    body: bytes = b""
    peer: str = ""  # the client's address, without the port

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


@dataclass(frozen=True, slots=True)
class Limits:
    request_timeout: float = 10.0
    max_connections: int = 32


Handler = Callable[[Request], Awaitable[Response]]


async def serve(host: str, port: int, handler: Handler, limits: Limits) -> asyncio.Server:
    open_connections = 0

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        if open_connections >= limits.max_connections:
            await _final(writer, 503, "too many admin connections; retry later", limits)
            return
        open_connections += 1
        try:
            await _one_connection(reader, writer, handler, limits)
        except ConnectionError:
            pass
        finally:
            open_connections -= 1
            writer.close()
    return await asyncio.start_server(on_client, host, port)


async def _one_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          handler: Handler, limits: Limits) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
    peer = writer.get_extra_info("peername")
    address = str(peer[0]) if isinstance(peer, tuple) else ""
    while True:
        try:
            async with asyncio.timeout(limits.request_timeout):
                request = await _read_request(conn, reader, address)
        except TimeoutError:
            if conn.their_state is not h11.IDLE or conn.trailing_data[0]:  # part of one came
                await _final(writer, 408, "the request was not complete in time", limits)
            return
        except h11.RemoteProtocolError as e:
            await _final(writer, e.error_status_hint, f"malformed HTTP request: {e}", limits)
            return
        except HttpError as e:
            await _final(writer, e.status, str(e), limits)
            return
        if request is None:
            return
        response = await _respond(handler, request)
        headers = [("content-type", response.content_type),
                   ("content-length", str(len(response.body))), *response.headers]
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
        writer.write(conn.send(h11.Data(data=response.body)))
        writer.write(conn.send(h11.EndOfMessage()))
        try:
            async with asyncio.timeout(limits.request_timeout):
                await writer.drain()
        except TimeoutError:
            return
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return
        conn.start_next_cycle()


async def _respond(handler: Handler, request: Request) -> Response:
    try:
        return await handler(request)
    except HttpError as e:
        return Response.json({"error": str(e)}, e.status)
    except Exception as e:  # the connection boundary: one line, a 500, no traceback
        log.error("admin API %s %s failed: %r", request.method, request.path, e)
        return Response.json({"error": "internal error; see the gateway's log"}, 500)


async def _final(writer: asyncio.StreamWriter, status: int, message: str,
                 limits: Limits) -> None:
    """Answer `status` with a JSON error, outside h11's state machine (the request may be
    unreadable), and close."""
    body = json.dumps({"error": message}).encode() + b"\n"
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    try:
        writer.write(head.encode() + body)
        async with asyncio.timeout(limits.request_timeout):
            await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader,
                        address: str) -> Request | None:
    request: Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and request is None and conn.their_state is h11.IDLE:
                return None
            continue
        if isinstance(event, h11.Request):
            request = _request(event, address)
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise HttpError(413, f"the request body is larger than {MAX_BODY} bytes")
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            request.body = bytes(body)
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


def _request(event: h11.Request, address: str) -> Request:
    try:
        target = event.target.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "the request target is not ASCII; percent-encode it") from None
    path, _, query = target.partition("?")
    headers = {k.decode("ascii").lower(): v.decode("latin-1") for k, v in event.headers}
    return Request(event.method.decode("ascii"), path, query, headers, peer=address)
