"""Group commit: many writes per transaction, durable before acknowledged.

Writes submitted during one turn of the event loop (plus, with `synchronous = "full"`, whatever
arrives while the writer thread commits the previous batch) go into one transaction. With
`normal` the commit runs at the end of the loop turn (no fsync, so cheaper than a thread hop);
with `full` it runs on a writer thread so the fsync never stalls the loop.
`on_commit(callback)` runs `callback` on the event loop once every write submitted before it is
durable — this is where PUBACK/PUBREC to producers is sent. Reads that must see a consistent
order with the writes (loading a queue window from disk) go through `read`.

A store that buffers its own rows (the queue store: an insert that is acknowledged before it
reaches a transaction need never be written) registers a flush with `defer`: it is called just
before the next transaction is taken, so its rows are in that transaction, and callbacks given
to `on_commit` meanwhile wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.store.db import StoreError, open_connection

T = TypeVar("T")
log = logging.getLogger(__name__)
Params = Sequence[Any]
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
REPORT_INTERVAL = 60.0  # seconds between two logged store failures


def _is_damage(error: BaseException) -> bool:
    """SQLite found the file itself broken (not full, not read-only, not busy)."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo a failed transaction. SQLite has already rolled back after some errors (disk
    full, I/O error); a second ROLLBACK would raise and hide the error that matters."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class Committer:
    """The single writer of the store. Not thread-safe: call it from the event loop only."""

    def __init__(self, path: Path, synchronous: str, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self._loop = loop
        self._conn = open_connection(path, synchronous)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="edgeq-store")
        # With synchronous=NORMAL a WAL commit does not fsync: committing at the end of the loop
        # turn costs less than the hop to the writer thread and back. FULL fsyncs every commit,
        # which must not stall the loop, so it keeps the thread.
        self._inline = synchronous != "full"
        self._ops: list[tuple[str, Any, bool]] = []
        self._group: list[Params] = []  # the rows of the last op when `write_grouped` made it
        self._reads: list[tuple[Callable[[sqlite3.Connection], Any], Callable[[Any], None]]] = []
        self._callbacks: list[Callable[[bool], None]] = []
        self._deferred: list[Callable[[], None]] = []  # buffered writers' flushes, see `defer`
        self._scheduled = False
        self._busy = False
        self._closed = False
        self.failed: str | None = None
        # Writing on into a damaged file can spread the damage: once SQLite reports it, every
        # later transaction is refused until a restart checks the file (`quick_check`).
        self.damaged = False
        self._wrote = False  # the last transaction changed rows
        self.failures = 0
        self._reported = False  # the current outage was logged
        self._reported_at = -REPORT_INTERVAL
        self.commits = 0
        self.writes = 0
        self.bytes_written = 0  # message bytes the stores submitted (for the disk budget)
        self._lock = threading.Lock()

    @property
    def connection(self) -> sqlite3.Connection:
        """For start-up reads before serving; afterwards only the writer thread uses it."""
        return self._conn

    @property
    def busy(self) -> bool:
        """A transaction is being committed or writes wait for the next one."""
        return self._busy or bool(self._ops) or bool(self._deferred) or self._scheduled

    @property
    def pending(self) -> int:
        return len(self._ops) + len(self._deferred)

    def write(self, sql: str, params: Params = ()) -> None:
        self._ops.append((sql, params, False))
        self._schedule()

    def write_grouped(self, sql: str, params: Params) -> None:
        """`write`, but consecutive calls with the same statement run as one executemany
        (a burst of acknowledgements deletes its rows in one call). Only a run that is still
        the last op is extended, so the order of all writes is exactly that of the calls."""
        ops = self._ops
        if ops and ops[-1][1] is self._group and ops[-1][0] == sql:
            self._group.append(params)
            return
        self._group = [params]
        ops.append((sql, self._group, True))
        self._schedule()

    def write_many(self, sql: str, rows: Iterable[Params]) -> None:
        self._ops.append((sql, list(rows), True))
        self._schedule()

    def defer(self, flush: Callable[[], None]) -> None:
        """Call `flush` (which submits buffered writes) just before the next transaction is
        taken; until then `on_commit` callbacks wait for it. Once per transaction."""
        if flush not in self._deferred:
            self._deferred.append(flush)
            self._schedule()

    def _run_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for flush in deferred:
            flush()

    def on_commit(self, callback: Callable[[bool], None]) -> None:
        """Run `callback(ok)` once everything written so far is committed (`ok` False if the
        transaction failed, e.g. disk full), or at once when nothing is pending."""
        if not self._ops and not self._deferred and not self._busy:
            callback(self.failed is None)
            return
        self._callbacks.append(callback)
        self._schedule()

    def read(self, query: Callable[[sqlite3.Connection], T], done: Callable[[T], None]) -> None:
        """Run `query` on the writer thread after the writes before it; `done(result)` on loop."""
        self._reads.append((query, done))
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            self._loop.call_soon(self._kick)

    def _kick(self) -> None:
        self._scheduled = False
        if self._busy or self._closed:
            return
        self._run_deferred()
        if not (self._ops or self._callbacks or self._reads):
            return
        ops, self._ops = self._ops, []
        callbacks, self._callbacks = self._callbacks, []
        reads, self._reads = self._reads, []
        self._busy = True
        if self._inline:
            future: asyncio.Future[list[Any]] = self._loop.create_future()
            try:
                future.set_result(self._run(ops, reads))
            except Exception as e:  # handed to _done like the writer thread's errors
                future.set_exception(e)
            self._done(future, callbacks, reads)
            return
        future = self._loop.run_in_executor(self._executor, self._run, ops, reads)
        future.add_done_callback(lambda f: self._done(f, callbacks, reads))

    def _run(self, ops: list[tuple[str, Any, bool]],
             reads: list[tuple[Callable[[sqlite3.Connection], Any], Any]]) -> list[Any]:
        conn = self._conn
        with self._lock:
            if ops and self.damaged:
                raise StoreError("the store is damaged; writes are stopped")
            # Only a transaction that changed rows proves the disk takes writes again: one that
            # deleted nothing commits without touching the file, even on a read-only one.
            changes = conn.total_changes
            if ops:
                conn.execute("BEGIN")
                try:
                    for sql, params, many in ops:
                        if many:
                            conn.executemany(sql, params)
                        else:
                            conn.execute(sql, params)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            self._wrote = conn.total_changes != changes
            return [query(conn) for query, _ in reads]

    def _done(self, future: asyncio.Future[list[Any]],
              callbacks: list[Callable[[bool], None]], reads: list[tuple[Any, Any]]) -> None:
        self._busy = False
        error = future.exception()
        if error is not None:
            self._failure(error)
        else:
            if self._wrote and self.failed is not None:
                self._recovered()
            self.commits += 1
            for done, (_, callback) in zip(future.result(), reads, strict=True):
                callback(done)
        for cb in callbacks:
            cb(error is None)
        if self._ops or self._deferred or self._callbacks or self._reads:
            self._schedule()

    def _failure(self, error: BaseException) -> None:
        """Log a failing store once per outage and at most once a minute: on a nearly full
        disk small transactions still succeed between failed ones."""
        self.failures += 1
        now = time.monotonic()
        if _is_damage(error) and not self.damaged:
            self.damaged = True
            self._reported = True
            log.error("the store is damaged (%s): %s; queued messages are refused from now "
                      "on; restart to check the file, then restore a backup or move it away",
                      self.path, error, extra={"REASON": str(error)})
        elif self.failed is None and now - self._reported_at >= REPORT_INTERVAL:
            self._reported, self._reported_at = True, now
            log.error("store write failed (%s): %s; queued messages are refused until writes "
                      "succeed again", self.path, error, extra={"REASON": str(error)})
        self.failed = f"{self.path}: {error}"

    def _recovered(self) -> None:
        self.failed = None
        if self._reported:
            self._reported = False
            log.warning("store writes succeed again (%s); %d transactions failed so far",
                        self.path, self.failures)

    def flush(self) -> None:
        """Commit everything pending synchronously (shutdown path)."""
        while self._busy:
            self._executor.submit(lambda: None).result()
            self._busy = False
        self._run_deferred()
        ops, self._ops = self._ops, []
        reads, self._reads = self._reads, []
        callbacks, self._callbacks = self._callbacks, []
        try:
            results = self._executor.submit(self._run, ops, reads).result()
        except (sqlite3.Error, StoreError) as e:  # disk full at shutdown: say so, close anyway
            log.error("store write failed at shutdown (%s): %s; %d writes not saved",
                      self.path, e, len(ops), extra={"REASON": str(e)})
            self.failed = f"{self.path}: {e}"
            results = None
        if results is not None:
            for result, (_, done) in zip(results, reads, strict=True):
                done(result)
        for cb in callbacks:
            cb(results is not None)

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._executor.submit(self._conn.close).result()
        self._executor.shutdown()
