"""Queue storage: the SQL behind the queue engine, on top of the group-commit `Committer`.

Every statement the hot path issues is one fixed SQL string, so the writer thread reuses the
prepared statement. Inserts are submitted at once (the producer's PUBACK waits for them); deletes
after acknowledgement and delivery-count updates are buffered and handed to the committer once
per commit cycle as one `executemany` each. Start-up reads are synchronous on the committer's
connection and use aggregates (depth and bytes come from the covering index of schema v2), so a
million queued messages are not read to start.

This module knows SQL and rows; what a queue does with them is `gateway.queues`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.messages import Message
from gateway.store.committer import Committer
from gateway.store.rows import unpack_props

COLUMNS = ("id, topic, payload, qos, props, lv_key, deliveries, created, expires_at, client_id,"
           " size, retain")
INSERT_INTO = ("INSERT INTO queue_messages (id, queue, topic, payload, qos, props, lv_key,"
               " deliveries, created, expires_at, client_id, size, retain) VALUES ")
ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows go in by the largest of these at a time, each one statement: the writer thread runs
# (and gives up the GIL for) one SQLite step per statement, not one per row.
INSERT_CHUNKS = (64, 16, 4, 1)
INSERTS = {n: INSERT_INTO + ", ".join([ROW] * n) for n in INSERT_CHUNKS}
DELETE_IDS = "DELETE FROM queue_messages WHERE id IN (SELECT value FROM json_each(?))"
SET_DELIVERIES = "UPDATE queue_messages SET deliveries = ? WHERE id = ?"
WINDOW = f"SELECT {COLUMNS} FROM queue_messages WHERE queue = ? AND id > ? ORDER BY id LIMIT ?"
DELETE_AFTER = "DELETE FROM queue_messages WHERE queue = ? AND id > ?"
DELETE_QUEUE = "DELETE FROM queue_messages WHERE queue = ?"
SAVE_QUEUE = ("INSERT INTO queues (name, spec, created, origin) VALUES (?, ?, ?, ?) "
              "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, origin = excluded.origin")
DROP_QUEUE = "DELETE FROM queues WHERE name = ?"
DELIVERIES = 7  # the place of `deliveries` in an INSERT row


def insert_statements(rows: list[list[Any]]) -> list[tuple[str, list[Any]]]:
    """`rows` as few multi-row INSERTs (sizes from INSERT_CHUNKS), in order."""
    statements = []
    at = 0
    for n in INSERT_CHUNKS:
        while len(rows) - at >= n:
            flat: list[Any] = []
            for row in rows[at:at + n]:
                flat += row
            statements.append((INSERTS[n], flat))
            at += n
    return statements


def id_list(ids: list[int]) -> str:
    """Ids as the JSON array `DELETE_IDS` reads."""
    return "[" + ",".join(map(str, ids)) + "]"



@dataclass(slots=True, frozen=True)
class StoredRow:
    """One queued message as read back from disk."""

    id: int
    message: Message
    lv_key: str | None
    deliveries: int
    size: int


@dataclass(slots=True, frozen=True)
class StoredQueue:
    """One row of table `queues`: a queue definition that must survive a restart."""

    name: str
    spec: bytes
    origin: str
    created: float


def row_to_stored(row: tuple[Any, ...]) -> StoredRow:
    """A `WINDOW` row into the message it holds."""
    (id_, topic, payload, qos, props, lv_key, deliveries, created, expires_at, client_id,
     size, retain) = row
    properties = unpack_props(props)
    message = Message(topic, payload, qos, bool(retain), properties, client_id or "", created,
                      expires_at)
    return StoredRow(id_, message, lv_key, deliveries, size)


def read_rows(conn: sqlite3.Connection, queue: str, after: int, limit: int,
              max_bytes: int) -> tuple[list[StoredRow], bool]:
    """Up to `limit` rows of `queue` after id `after`, in id order, stopping before the one that
    would take their total size past `max_bytes` (the first row always comes, so a queue makes
    progress). `cut` says the byte limit stopped it, i.e. more rows may follow."""
    rows: list[StoredRow] = []
    total = 0
    for row in conn.execute(WINDOW, (queue, after, limit)):
        size = row[10]
        if rows and total + size > max_bytes:
            return rows, True
        rows.append(row_to_stored(row))
        total += size
    return rows, False


class QueueStore:
    """What the queue engine asks of the disk. Call from the event loop only.

    Inserts, delivery counts and deletes are buffered and handed to the committer together,
    just before it takes its next transaction (`Committer.defer`): one `executemany` each per
    transaction. An insert still in the buffer is changed in place (its delivery count) or
    dropped (the message was acknowledged, replaced or dropped before it reached a transaction):
    a consumer that acknowledges while the previous commit is still being fsynced costs no
    write at all. The producer's PUBACK still waits for that next commit (`on_commit` waits for
    the buffer), so a message is acknowledged once it is on disk or already consumed.
    """

    def __init__(self, committer: Committer) -> None:
        self.committer = committer
        self._inserts: dict[int, list[Any]] = {}
        self._deletes: list[int] = []
        self._deliveries: dict[int, int] = {}
        self._armed = False
        self._reads = 0

    @property
    def busy(self) -> bool:
        """Whether anything is buffered, being written or being read for the queues."""
        return bool(self._reads or self._inserts or self._deletes or self._deliveries
                    or self.committer.pending)

    @property
    def failed(self) -> str | None:
        """Why the last transaction failed, or None while the store is healthy."""
        return self.committer.failed

    # -- start-up, synchronous ---------------------------------------------------------------

    def load_definitions(self) -> list[StoredQueue]:
        rows = self.committer.connection.execute(
            "SELECT name, spec, origin, created FROM queues ORDER BY created, name").fetchall()
        return [StoredQueue(name, spec if isinstance(spec, bytes) else spec.encode(),
                            origin or "runtime", created or 0.0)
                for name, spec, origin, created in rows]

    def load_summaries(self) -> dict[str, tuple[int, int]]:
        """{queue: (messages, bytes)} from the covering index (queue, id, size)."""
        rows = self.committer.connection.execute(
            "SELECT queue, count(*), total(size) FROM queue_messages GROUP BY queue").fetchall()
        return {queue: (count, int(size)) for queue, count, size in rows}

    def max_id(self) -> int:
        row = self.committer.connection.execute("SELECT max(id) FROM queue_messages").fetchone()
        return int(row[0] or 0)

    def rename_now(self, old: str, new: str, spec: bytes) -> None:
        """Start-up only: give a queue and its messages a new name, in one transaction."""
        conn = self.committer.connection
        conn.execute("BEGIN")
        conn.execute("UPDATE queue_messages SET queue = ? WHERE queue = ?", (new, old))
        conn.execute("UPDATE queues SET name = ?, spec = ? WHERE name = ?", (new, spec, old))
        conn.execute("COMMIT")

    def load_keys(self, queue: str) -> list[tuple[str, int, int]]:
        """(last-value key, id, size) of every keyed message of `queue`, oldest first."""
        return self.committer.connection.execute(
            "SELECT lv_key, id, size FROM queue_messages WHERE queue = ? AND lv_key IS NOT NULL"
            " ORDER BY id", (queue,)).fetchall()

    def load_window(self, queue: str, after: int, limit: int, max_bytes: int) -> list[StoredRow]:
        return read_rows(self.committer.connection, queue, after, limit, max_bytes)[0]

    # -- run time --------------------------------------------------------------------------

    def read_window(self, queue: str, after: int, limit: int, max_bytes: int,
                    done: Callable[[list[StoredRow], bool], None]) -> None:
        """The next messages of `queue` after id `after`, read behind pending writes: see
        `read_rows`; `done(rows, cut)`."""
        self.flush()

        def query(conn: sqlite3.Connection) -> tuple[list[StoredRow], bool]:
            return read_rows(conn, queue, after, limit, max_bytes)

        self._reads += 1

        def finished(result: tuple[list[StoredRow], bool]) -> None:
            self._reads -= 1
            done(*result)

        self.committer.read(query, finished)

    def insert(self, id_: int, queue: str, message: Message, size: int, props: bytes | None,
               lv_key: str | None, created: float) -> None:
        self.committer.bytes_written += size
        self._inserts[id_] = [id_, queue, message.topic, message.payload, message.qos, props,
                              lv_key, 0, created, message.expires_at, message.client_id or None,
                              size, int(message.retain)]
        self._arm()

    def delete_now(self, id_: int) -> None:
        """Delete in the transaction of the writes submitted with it (replacement, drop)."""
        self.delete(id_)

    def delete(self, id_: int) -> None:
        """Delete in the next transaction; a row not written yet is simply never written."""
        self._deliveries.pop(id_, None)
        if self._inserts.pop(id_, None) is None:
            self._deletes.append(id_)
            self._arm()

    def set_deliveries(self, id_: int, deliveries: int) -> None:
        row = self._inserts.get(id_)
        if row is not None:
            row[DELIVERIES] = deliveries
            return
        self._deliveries[id_] = deliveries
        self._arm()

    def delete_after(self, queue: str, after: int) -> None:
        self.flush()
        self.committer.write(DELETE_AFTER, (queue, after))

    def delete_many(self, ids: list[int]) -> None:
        for id_ in ids:
            self.delete(id_)

    def drop_queue(self, name: str) -> None:
        self.flush()
        self.committer.write(DELETE_QUEUE, (name,))
        self.committer.write(DROP_QUEUE, (name,))

    def save_definition(self, name: str, spec: bytes, origin: str) -> None:
        self.flush()
        self.committer.write(SAVE_QUEUE, (name, spec, time.time(), origin))

    def forget_definition(self, name: str) -> None:
        self.flush()
        self.committer.write(DROP_QUEUE, (name,))

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            self.committer.defer(self.flush)

    def flush(self) -> None:
        """Hand buffered inserts, delivery counts and deletes to the committer now, in that
        order (a delete or count in the buffer is never for a row inserted after it)."""
        self._armed = False
        if self._inserts:
            inserts, self._inserts = self._inserts, {}
            for sql, params in insert_statements(list(inserts.values())):
                self.committer.write(sql, params)
        if self._deliveries:
            updates = [(n, id_) for id_, n in self._deliveries.items()]
            self._deliveries = {}
            self.committer.write_many(SET_DELIVERIES, updates)
        if self._deletes:
            deletes, self._deletes = self._deletes, []
            self.committer.write(DELETE_IDS, (id_list(deletes),))
