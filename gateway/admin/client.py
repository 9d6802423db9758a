"""A small client of the admin API for the CLI and the TUI (standard library only).

Where to connect: `--url`/`--token`, else `EDGEQ_ADMIN_URL`/`EDGEQ_ADMIN_TOKEN`, else the
`admin.json` the gateway wrote into its data directory.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from gateway.admin.endpoint import CONNECTION_FILE, PREFIX, AdminError


class AdminClient:
    def __init__(self, url: str, token: str, timeout: float = 5.0,
                 found_in: Path | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.found_in = found_in  # the admin.json the URL came from, if it did
        self.authorization = f"Bearer {token}"
        if user is not None:
            basic = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.authorization = f"Basic {basic}"

    @classmethod
    def discover(cls, url: str | None = None, token: str | None = None,
                 data_dir: str = "var", user: str | None = None,
                 password: str | None = None) -> AdminClient:
        if url:
            _check_url(url, "--url")
        if user is not None:
            if not url:
                raise AdminError("--user needs the gateway's address (--url or --host/--port)")
            return cls(url, "", user=user, password=password)
        if not url and os.environ.get("EDGEQ_ADMIN_URL"):
            url = _check_url(os.environ["EDGEQ_ADMIN_URL"], "EDGEQ_ADMIN_URL")
        token = token or os.environ.get("EDGEQ_ADMIN_TOKEN")
        found_in = None
        if not (url and token):
            path = Path(data_dir) / CONNECTION_FILE
            try:
                found = json.loads(path.read_text())
                found_url, found_token = str(found["url"]), str(found["token"])
            except PermissionError:
                raise AdminError(_unreadable(path)) from None
            except (OSError, ValueError, KeyError, TypeError):
                raise AdminError(f"no running gateway found: {path} is missing or unreadable; "
                                 "start it with `edgeq serve` or pass --url and --token") from None
            found_in = path if not url else None
            url = url or found_url
            token = token or found_token
        return cls(str(url), str(token), found_in=found_in)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{PREFIX}/{path}", data=data, method=method,
                                     headers={"Authorization": self.authorization,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read())["error"]
            except (ValueError, KeyError):
                message = e.reason
            raise AdminError(f"{message}", e.code) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if self.found_in is not None and isinstance(reason, ConnectionRefusedError):
                # admin.json outlives the gateway (a stop, a crash): say so, not "errno 111"
                raise AdminError(f"no running gateway found: nothing answers at {self.url} "
                                 f"(from {self.found_in}); start it with `edgeq serve` or pass "
                                 "--url and --token") from None
            raise AdminError(f"cannot reach the gateway at {self.url}: {reason}") from None

    def queues(self) -> list[dict[str, Any]]:
        return self.request("GET", "queues")  # type: ignore[no-any-return]

    def queue(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"queues/{quote(name, safe='')}")  # type: ignore[no-any-return]

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "queues", fields)  # type: ignore[no-any-return]

    def purge(self, name: str) -> int:
        return int(self.request("POST", f"queues/{quote(name, safe='')}/purge")["purged"])

    def peek(self, name: str, limit: int, whole: bool = False,
             offset: int = 0) -> list[dict[str, Any]]:
        """`limit` ready messages, oldest first after `offset`; `whole`: with the payload
        (`payload_base64`)."""
        query = f"limit={limit}&offset={offset}" + ("&payload=1" if whole else "")
        return self.request(  # type: ignore[no-any-return]
            "GET", f"queues/{quote(name, safe='')}/messages?{query}")

    def replay(self, name: str, offset: int | None = None) -> int:
        """Replay the dead letters of `name`, or only the one at `offset` (0: the oldest)."""
        query = "" if offset is None else f"?offset={offset}"
        return int(self.request("POST", f"queues/{quote(name, safe='')}/replay{query}")
                   ["replayed"])

    def delete(self, name: str) -> None:
        self.request("DELETE", f"queues/{quote(name, safe='')}")

    def clients(self) -> list[dict[str, Any]]:
        return self.request("GET", "clients")  # type: ignore[no-any-return]

    def storage(self) -> dict[str, Any]:
        """The store's health: file sizes, free disk, memory, paused producers, errors."""
        return self.request("GET", "storage")  # type: ignore[no-any-return]

    def history(self, since: int = 0, queue: str | None = None) -> dict[str, Any]:
        """The samples after number `since` of every queue (or of `queue`): see
        `gateway.admin.history`."""
        query = f"since={since}" + ("" if queue is None else f"&queue={quote(queue, safe='')}")
        return self.request("GET", f"history?{query}")  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self.request("GET", "stats")  # type: ignore[no-any-return]

    def bridges(self) -> list[dict[str, Any]]:
        """One record per bridge (docs/bridge.md, "What a bridge reports")."""
        return self.request("GET", "bridges")  # type: ignore[no-any-return]

    def reload(self) -> str:
        return str(self.request("POST", "reload")["reloaded"])


def _unreadable(path: Path) -> str:
    """What to do about an `admin.json` this user may not read: join the group that may
    (the gateway writes it with mode 0640), or pass the token."""
    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):
        group = "edgeq"
    return (f"cannot read {path}: permission denied; it is readable by group {group}: "
            f"`sudo usermod -aG {group} $USER` and log in again, or pass --token")


def _check_url(url: str, where: str) -> str:
    """`url` if it is an http(s)://HOST[:PORT] address; AdminError naming `where` otherwise."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError:
        valid = False
    if not valid:
        raise AdminError(f"{where} {url}: not an admin API URL; use http://HOST:PORT, "
                         "e.g. http://127.0.0.1:18083")
    return url
