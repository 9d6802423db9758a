"""Where the TUI gets its data and sends its actions: the gateway's admin API.

`DataSource` is the seam: the app only talks to one, from worker threads (every call may block
for the length of a network round trip). `AdminSource` is the real one; tests that need fixed,
deterministic data for screenshots give the app another object with the same methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gateway.admin.client import AdminClient
from gateway.admin.endpoint import AdminError
from tui.model import DeadLetter, QueueDetail, Snapshot

__all__ = ["AdminError", "AdminSource", "DataSource"]
T = TypeVar("T")


class DataSource(Protocol):
    """What the app needs from a gateway. Failures raise `AdminError` with a readable message."""

    @property
    def where(self) -> str:
        """The gateway's address, for the title bar."""
        ...

    def fetch(self, since: int) -> Snapshot:
        """The figures of now, with the history samples taken after number `since`."""
        ...

    def messages(self, name: str, limit: int) -> list[DeadLetter]:
        """The oldest `limit` ready messages of a queue (a dead-letter queue's: dead letters)."""
        ...

    def message(self, name: str, index: int) -> DeadLetter | None:
        """The ready message at `index` (0: the oldest) with its whole payload."""
        ...

    def replay(self, name: str, offset: int | None = None) -> int:
        """Replay every dead letter of `name`, or only the one at `offset` (0: the oldest)."""
        ...

    def queue(self, name: str) -> QueueDetail: ...

    def create(self, fields: dict[str, Any]) -> str: ...

    def purge(self, name: str) -> int: ...

    def delete(self, name: str) -> None: ...

    def notice(self) -> str | None:
        """What changed about the connection since the last call (a new token), if anything."""
        ...


class AdminSource:
    """A `DataSource` over `AdminClient` (HTTP + bearer token).

    A gateway that restarts without a configured token writes a new one into its
    `admin.json`; `rediscover` (when given) builds a fresh client from there after a failure,
    so the view reconnects by itself instead of staying on "wrong admin token".
    """

    def __init__(self, client: AdminClient,
                 rediscover: Callable[[], AdminClient] | None = None) -> None:
        self.client = client
        self.rediscover = rediscover
        self._notice: str | None = None

    @property
    def where(self) -> str:
        return self.client.url

    def fetch(self, since: int) -> Snapshot:
        return self._call(lambda c: Snapshot.parse(c.queues(), c.clients(), c.stats(),
                                                   c.storage(), _history(c, since)))

    def messages(self, name: str, limit: int) -> list[DeadLetter]:
        return self._call(lambda c: [DeadLetter.parse(m) for m in c.peek(name, limit)])

    def message(self, name: str, index: int) -> DeadLetter | None:
        found = self._call(lambda c: c.peek(name, 1, whole=True, offset=index))
        return DeadLetter.parse(found[0]) if found else None

    def replay(self, name: str, offset: int | None = None) -> int:
        return self._call(lambda c: c.replay(name, offset))

    def queue(self, name: str) -> QueueDetail:
        return self._call(lambda c: QueueDetail.parse(c.queue(name)))

    def create(self, fields: dict[str, Any]) -> str:
        created = self._call(lambda c: c.create(fields))
        return str(created.get("name") or created.get("filter") or fields["filter"])

    def purge(self, name: str) -> int:
        return self._call(lambda c: c.purge(name))

    def delete(self, name: str) -> None:
        self._call(lambda c: c.delete(name))

    def notice(self) -> str | None:
        notice, self._notice = self._notice, None
        return notice

    def _call(self, request: Callable[[AdminClient], T]) -> T:
        try:
            return request(self.client)
        except AdminError as e:
            fresh = self._fresh_client()
            if fresh is None:
                if e.status == 401:
                    raise AdminError(_refused(self.client), 401) from None
                raise
        old, self.client = self.client, fresh
        answer = request(fresh)
        if fresh.token != old.token:
            where = fresh.found_in or "admin.json"
            self._notice = f"the gateway has a new admin token; now using the one in {where}"
        return answer

    def _fresh_client(self) -> AdminClient | None:
        """A client with a different URL or token than the current one, if there is one."""
        if self.rediscover is None:
            return None
        try:
            fresh = self.rediscover()
        except AdminError:
            return None
        if (fresh.url, fresh.token) == (self.client.url, self.client.token):
            return None
        fresh.timeout = self.client.timeout
        return fresh


def _refused(client: AdminClient) -> str:
    """Why the gateway answers 401 to credentials that worked, and what to do."""
    if client.authorization.startswith("Basic"):
        fix = "check the user (it must be in admin.users) and its password"
    elif client.found_in is not None:
        fix = (f"the token in {client.found_in} is not the gateway's (is it another gateway's "
               "data directory?)")
    else:
        fix = ("it restarted with another token? pass the new one with --token, or start top "
               "with --data-dir to follow admin.json")
    return f"the gateway at {client.url} refuses the admin credentials: {fix}"


def _history(client: AdminClient, since: int) -> dict[str, Any] | None:
    """The history samples after `since`; None from a gateway that serves none (404)."""
    try:
        return client.history(since)
    except AdminError as e:
        if e.status == 404:
            return None
        raise
