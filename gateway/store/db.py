"""Opening the SQLite database: WAL, the synchronous level, the schema and its migrations.

The schema version lives in `PRAGMA user_version`; `migrate` brings an older store forward
and refuses a newer one with a clear message instead of guessing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

SCHEMA_VERSION = 8
DB_NAME = "edgeq.db"
log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be opened or used; the message says which file and why."""


_V1 = (
    """CREATE TABLE IF NOT EXISTS "queues" (
       "name" TEXT PRIMARY KEY, "spec" TEXT, "created" REAL, "origin" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "queue_messages" (
       "id" INTEGER PRIMARY KEY, "queue" TEXT, "topic" TEXT, "payload" BLOB,
       "qos" INTEGER, "props" BLOB, "lv_key" TEXT, "deliveries" INTEGER, "created" REAL,
       "expires_at" REAL, "client_id" TEXT, "size" INTEGER)""",
    """CREATE INDEX IF NOT EXISTS "idx_queue_messages_queue_id"
       ON "queue_messages" ("queue", "id")""",
    """CREATE INDEX IF NOT EXISTS "idx_queue_messages_queue_lv_key"
       ON "queue_messages" ("queue", "lv_key")""",
    """CREATE TABLE IF NOT EXISTS "sessions" (
       "client_id" TEXT PRIMARY KEY, "expiry" INTEGER, "disconnected_at" REAL,
       "subscriptions" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "session_messages" (
       "id" INTEGER PRIMARY KEY, "client_id" TEXT, "topic" TEXT, "payload" BLOB,
       "qos" INTEGER, "retain" INTEGER, "props" BLOB, "created" REAL, "expires_at" REAL,
       "origin" TEXT)""",
    """CREATE INDEX IF NOT EXISTS "idx_session_messages_client_id_id"
       ON "session_messages" ("client_id", "id")""",
    """CREATE TABLE IF NOT EXISTS "retained" (
       "topic" TEXT PRIMARY KEY, "payload" BLOB, "qos" INTEGER, "props" BLOB,
       "created" REAL, "expires_at" REAL, "client_id" TEXT)""",
)


def _v1(db: sqlite3.Connection) -> None:
    for statement in _V1:
        db.execute(statement)


def _v2(db: sqlite3.Connection) -> None:
    """Queue depth and bytes at start-up come from one covering index, not 1M table reads."""
    db.execute("DROP INDEX IF EXISTS idx_queue_messages_queue_id")
    db.execute('CREATE INDEX IF NOT EXISTS "idx_queue_messages_queue_id_size" '
               'ON "queue_messages" ("queue", "id", "size")')


def _v3(db: sqlite3.Connection) -> None:
    """A QoS 2 message released (PUBREC received) keeps its packet id, so that after a restart
    the broker resends PUBREL, never the PUBLISH: exactly-once across restarts."""
    db.execute('ALTER TABLE "session_messages" ADD COLUMN "packet_id" INTEGER')
    db.execute('ALTER TABLE "session_messages" ADD COLUMN "released" INTEGER NOT NULL DEFAULT 0')


def _v4(db: sqlite3.Connection) -> None:
    """Queued messages keep their retain flag (a bridge forwards it after a restart too)."""
    db.execute('ALTER TABLE "queue_messages" ADD COLUMN "retain" INTEGER NOT NULL DEFAULT 0')


def _v5(db: sqlite3.Connection) -> None:
    """One row per subscription of a persistent session: a SUBSCRIBE writes its own filters,
    not the session's whole list again (N subscriptions made one at a time cost O(N²) bytes)."""
    db.execute('CREATE TABLE IF NOT EXISTS "session_subscriptions" ('
               '"client_id" TEXT, "filter" TEXT, "qos" INTEGER, "no_local" INTEGER, '
               '"retain_as_published" INTEGER, "retain_handling" INTEGER, '
               '"identifier" INTEGER, PRIMARY KEY ("client_id", "filter"))')
    db.execute("INSERT OR REPLACE INTO session_subscriptions SELECT s.client_id, "
               "json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), "
               "json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]'), "
               "json_extract(j.value, '$[4]'), json_extract(j.value, '$[5]') "
               "FROM sessions AS s, json_each(s.subscriptions) AS j")
    db.execute("UPDATE sessions SET subscriptions = '[]'")


def _v6(db: sqlite3.Connection) -> None:
    """A session's owed messages stay on disk: each row keeps its size, and one covering index
    gives every session's count and bytes at start-up without reading a payload."""
    db.execute('ALTER TABLE "session_messages" ADD COLUMN "size" INTEGER NOT NULL DEFAULT 0')
    db.execute("UPDATE session_messages SET size = length(CAST(topic AS BLOB)) + "
               "length(payload) + coalesce(length(props), 0)")
    db.execute("DROP INDEX IF EXISTS idx_session_messages_client_id_id")
    db.execute('CREATE INDEX IF NOT EXISTS "idx_session_messages_client_id_released_id_size" '
               'ON "session_messages" ("client_id", "released", "id", "size")')


def _v7(db: sqlite3.Connection) -> None:
    """A session belongs to the user who created it: `owner` is `u:<name>` or `a` (anonymous);
    NULL for sessions stored before owners were kept (the next user to resume one claims it)."""
    db.execute('ALTER TABLE "sessions" ADD COLUMN "owner" TEXT')


def _v8(db: sqlite3.Connection) -> None:
    """QoS 2 packet ids received from a persistent session's client and not yet released
    (method B): written in the commit that stores the message, so a PUBLISH resent after a
    crash is recognised and not stored twice."""
    db.execute('CREATE TABLE IF NOT EXISTS "session_incoming" ("client_id" TEXT, '
               '"packet_id" INTEGER, PRIMARY KEY ("client_id", "packet_id"))')


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7, 8: _v8}


def open_connection(path: Path, synchronous: str = "normal") -> sqlite3.Connection:
    """A connection in WAL mode with the chosen durability (`normal` or `full`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size == 0:
            # what a fresh store looks like, too: say so, in case it was truncated
            log.warning("%s is empty: starting with an empty store", path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA wal_autocheckpoint=4000")
        # Debian builds SQLite with secure_delete on: every freed page is zeroed and written
        # again, which doubles what deleting a drained backlog writes. FAST still zeroes what
        # is deleted from pages that are written anyway.
        conn.execute("PRAGMA secure_delete=FAST")
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"{path}: cannot open the store: {e}{_hint(path.parent)}") from None
    return conn


def _hint(directory: Path) -> str:
    """Why a store may not open, when the directory tells (root ignores permissions)."""
    with contextlib.suppress(OSError):
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f" ({directory} is on a read-only file system)"
        if not os.access(directory, os.W_OK):
            return f" ({directory} is not writable by this user)"
    return ""


@contextlib.contextmanager
def loading(path: Path) -> Iterator[None]:
    """Start-up reads of the store: an unreadable page becomes one StoreError that names the
    file and the way out, instead of a traceback."""
    try:
        yield
    except (sqlite3.DatabaseError, OSError) as e:
        raise StoreError(f"{path}: the store cannot be read ({e}); restore a backup or move "
                         "the file away to start empty") from None


def migrate(conn: sqlite3.Connection, path: Path, check: bool = True) -> None:
    """Create or upgrade the schema to SCHEMA_VERSION; with `check`, verify the file too
    (seconds on a large store: done only after an unclean stop)."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: the store has schema version {version}, newer than this "
                             f"edgeq understands ({SCHEMA_VERSION}); upgrade edgeq or restore a "
                             "backup")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            MIGRATIONS[target](conn)
            conn.execute(f"PRAGMA user_version={target}")
            conn.execute("COMMIT")
        if 0 < version < SCHEMA_VERSION:
            log.info("%s: store upgraded from schema version %d to %d", path, version,
                     SCHEMA_VERSION)
        result = conn.execute("PRAGMA quick_check").fetchone()[0] if check else "ok"
        if result != "ok":
            raise StoreError(f"{path}: the store is damaged ({result}); restore a backup or "
                             "move the file away to start empty")
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: the store is unreadable ({e}); restore a backup or move the "
                         "file away to start empty") from None
