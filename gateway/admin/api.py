"""The admin API routes: queues, clients, bridges, broker statistics, reload, and `/metrics`.

Every route but `/metrics` needs `Authorization: Bearer <token>` (the configured token, or the
one generated into `<data_dir>/admin.json` at start-up, readable by the gateway's user and group,
so that an operator in that group runs `edgeq top` without sudo).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import msgspec

from gateway.admin import http, metrics
from gateway.admin.endpoint import CONNECTION_FILE, PREFIX
from gateway.admin.history import History, sample_every
from gateway.admin.http import HttpError, Request, Response
from gateway.broker import sysstats
from gateway.config import ConfigError, queue_spec, split_address
from gateway.queues.model import QueueError, QueueStats
from gateway.store.db import DB_NAME

if TYPE_CHECKING:
    from gateway.broker.server import Broker
    from gateway.queues.engine import QueueEngine


CONNECTION_FILE_MODE = 0o640


Records = Callable[[], list[dict[str, Any]]]


class AdminApi:
    def __init__(self, broker: Broker, token: str, reload: Callable[[], Awaitable[str]],
                 bridges: Records) -> None:
        self.broker = broker
        self.token = token
        self._reload = reload
        self._bridges = bridges
        self._verified: dict[bytes, float] = {}
        self.metrics = metrics.Exposition(broker)
        settings = broker.config.admin
        self.history = History(settings.history_interval, settings.history,
                               settings.history_queues)
        self._sampler: asyncio.Task[None] | None = None

    def start_sampling(self) -> None:
        """Sample the queues for `GET /history` from now on (none when `admin.history` is
        shorter than one interval)."""
        if self.history.samples > 0:
            self._sampler = asyncio.get_running_loop().create_task(
                sample_every(self.history, self.broker.engine.stats, time.monotonic))

    async def handle(self, request: Request) -> Response:
        if request.path == "/metrics" and request.method == "GET":
            return Response(200, self.metrics.text(), metrics.CONTENT_TYPE)
        await self._authorise(request)
        if not request.path.startswith(PREFIX + "/"):
            raise HttpError(404, f"no such endpoint {request.path}")
        parts = [unquote(p) for p in request.path[len(PREFIX) + 1:].split("/")]
        if request.method == "POST" and parts == ["reload"]:
            return await self._reload_files()
        return self._route(request.method, parts, request)

    async def _authorise(self, request: Request) -> None:
        """Any header that is not a right Bearer token or Basic login is a 401, however
        malformed (non-ASCII, bad base64, no colon): header values arrive as Latin-1 text."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode("latin-1"), self.token.encode()):
            return
        if scheme.lower() == "basic" and await self._basic_ok(value.strip(), request.peer):
            return
        raise HttpError(401, "missing or wrong admin credentials (a Bearer token, or Basic auth "
                             "for a user listed in admin.users)")

    async def _basic_ok(self, value: str, peer: str) -> bool:
        """A user of `admin.users` with their password-file password, checked off the event
        loop and throttled like a CONNECT; a success is cached for a minute so a TUI polling
        every second does not hash a password per request."""
        try:
            user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        if not colon or user not in self.broker.config.admin.users:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return True
        logins = self.broker.logins
        if logins.access.authenticator.password_file is None or not await logins.verify(
                peer, user, password.encode(), "admin API"):
            return False
        self._verified[key] = now + 60
        return True

    async def _reload_files(self) -> Response:
        """200 with the config's source, or 422 naming the refused file, line and reason."""
        try:
            return Response.json({"reloaded": await self._reload()})
        except ConfigError as e:
            raise HttpError(422, str(e)) from None

    def _route(self, method: str, parts: list[str], request: Request) -> Response:
        engine = self.broker.engine
        match method, parts:
            case "GET", ["stats"]:
                return Response.json(sysstats.snapshot(self.broker))
            case "GET", ["clients"]:
                return Response.json([c.describe() for c in self.broker.live.values()])
            case "GET", ["bridges"]:
                return Response.json(self._bridges())
            case "GET", ["storage"]:
                return Response.json(storage(self.broker))
            case "GET", ["history"]:
                queue = parse_qs(request.query).get("queue", [None])[-1]
                return Response.json(self.history.describe(
                    time.monotonic(), _number(request.query, "since", 0), queue))
            case "GET", ["queues"]:
                return Response.json([_with_limits(engine, s) for s in engine.stats()])
            case "POST", ["queues"]:
                return self._create(request.json())
            case "GET", ["queues", name]:
                return Response.json(self._guard(lambda: engine.show(name)))
            case "GET", ["queues", name, "messages"]:
                limit, whole = _limit(request.query), _flag(request.query, "payload")
                offset = _number(request.query, "offset", 0)
                return Response.json(self._guard(
                    lambda: engine.peek(name, limit, whole, offset)))
            case "POST", ["queues", name, "replay"]:
                one = _number(request.query, "offset", 0) if "offset=" in request.query \
                    else None
                return Response.json({"replayed": self._guard(lambda: engine.replay(name,
                                                                                    one))})
            case "POST", ["queues", name, "purge"]:
                return Response.json({"purged": self._guard(lambda: engine.purge(name))})
            case "DELETE", ["queues", name]:
                self._guard(lambda: engine.delete(name))
                return Response.json({"deleted": name})
        raise HttpError(404, f"no such endpoint {method} {request.path}")

    def _create(self, fields: Any) -> Response:
        if not isinstance(fields, dict):
            raise HttpError(400, "send a JSON object with the queue's keys")
        try:
            spec = queue_spec(fields, "queue")
        except ConfigError as e:
            raise HttpError(400, str(e)) from None
        self._guard(lambda: self.broker.engine.create(spec))
        return Response.json(msgspec.to_builtins(spec), 201)

    @staticmethod
    def _guard(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except QueueError as e:
            raise HttpError(404 if "no queue" in str(e) else 400, str(e)) from None


def _with_limits(engine: QueueEngine, stats: QueueStats) -> dict[str, Any]:
    """A queue's statistics with the limits they fill (`edgeq top` shows the fill in %)."""
    spec = engine.spec(stats.name)
    return {**msgspec.to_builtins(stats), "max_messages": spec.max_messages,
            "max_bytes": spec.max_bytes}


def storage(broker: Broker) -> dict[str, Any]:
    """The store's health (`GET /api/v1/storage`): database and WAL file sizes, free disk
    against `storage.min_free_bytes`, memory against `storage.memory_budget`, producers
    paused by either, and the last store error."""
    settings = broker.config.storage
    database = Path(broker.config.data_dir) / DB_NAME
    return {
        "database_bytes": _file_size(database),
        "wal_bytes": _file_size(database.with_name(DB_NAME + "-wal")),
        "live_bytes": broker.disk.used,
        "max_disk_bytes": settings.max_disk_bytes,
        "disk_free": shutil.disk_usage(database.parent).free,
        "min_free_bytes": settings.min_free_bytes,
        "disk_full": broker.disk.full,
        "disk_refused": broker.disk.refused,
        "memory_in_use": broker.memory_in_use(),
        "memory_budget": settings.memory_budget,
        "memory_full": broker.overloaded,
        "producers_paused": len(broker.paused),
        "store_error": broker.committer.failed,
    }


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _flag(query: str, name: str) -> bool:
    """`?payload=1`: a yes/no query parameter."""
    return parse_qs(query).get(name, ["0"])[-1] in ("1", "true", "yes")


def _limit(query: str) -> int:
    """`?limit=N` of a peek: 10 by default."""
    limit = _number(query, "limit", 10)
    if not 0 < limit <= 100_000:
        raise HttpError(400, f"limit: {limit} is not a whole number from 1 to 100000")
    return limit


def _number(query: str, name: str, default: int) -> int:
    """`?NAME=N`, a whole number (`default` when absent)."""
    value = parse_qs(query).get(name, [str(default)])[-1]
    if not value.isdigit() or len(value) > 9:
        raise HttpError(400, f"{name}: {value!r} is not a whole number")
    return int(value)


async def start(broker: Broker, reload: Callable[[], Awaitable[str]],
                bridges: Records) -> asyncio.Server:
    """Listen on `admin.listen` and write `admin.json` (URL and token) into the data dir.
    `bridges` gives the records of `GET /api/v1/bridges` (the admin API does not import the
    bridge: `gateway.serve` hands in `Bridges.snapshot`)."""
    settings = broker.config.admin
    data_dir = Path(broker.config.data_dir)
    token = settings.token or _previous_token(data_dir) or _new_token()
    api = AdminApi(broker, token, reload, bridges)
    api.start_sampling()
    host, port = split_address(settings.listen)
    try:
        server = await http.serve(host, port, api.handle,
                                  http.Limits(settings.request_timeout, settings.max_connections))
    except OSError as e:
        raise ConfigError(f"admin.listen {settings.listen}: cannot listen: {e.strerror}") from None
    bound = server.sockets[0].getsockname()
    write_connection_file(data_dir, f"http://{bound[0]}:{bound[1]}", token)
    return server


def _previous_token(data_dir: Path) -> str | None:
    """The generated token of the last run, kept so `edgeq top` survives a gateway restart."""
    try:
        token = json.loads((data_dir / CONNECTION_FILE).read_text()).get("token")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(token, str) or len(token) < 24 or token.startswith("-"):
        return None
    return token


def _new_token() -> str:
    """A random token that never starts with `-`, so `--token TOKEN` cannot read as a flag."""
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


def write_connection_file(data_dir: Path, url: str, token: str) -> None:
    """Mode 0640 whatever the umask (the service runs with UMask=0077): members of the
    gateway's group (`edgeq` on the appliance) may read the token, nobody else."""
    path = data_dir / CONNECTION_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CONNECTION_FILE_MODE)
    os.fchmod(fd, CONNECTION_FILE_MODE)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
