"""Persistent sessions on disk: subscriptions and the QoS 1/2 messages owed to each client.

Only sessions with an expiry above zero are written. A message for such a session is inserted
before the producer is acknowledged and deleted when the client acknowledges it, so a broker
restart (or `kill -9`) loses nothing that was acknowledged. Rows acknowledged in the order they
were sent are deleted as a range (`remove_through`: one statement per session and transaction),
others one by one. The row keeps the delivery as this
client gets it (its retain flag, its subscription identifiers) and its size, so the backlog
(`gateway.broker.backlog`) can leave it on disk and read it back in pages; at start-up only
each session's count and bytes are read, from a covering index.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.messages import Message, message_size, restored
from gateway.mqtt.packets import Subscription
from gateway.mqtt.properties import Properties
from gateway.store.committer import Committer
from gateway.store.rows import message_from_row, pack_props, unpack_props

# An owed delivery read back: row id, message, QoS, retain flag, subscription identifiers.
Stored = tuple[int, Message, int, bool, tuple[int, ...]]
_INSERT = ("INSERT INTO session_messages (id, client_id, topic, payload, qos, retain, props, "
           "created, expires_at, origin, size) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
_READ = ("SELECT id, topic, payload, qos, retain, props, created, expires_at, origin, size "
         "FROM session_messages WHERE client_id = ? AND id > ? AND released = 0 ORDER BY id")
_REMOVE_OLDEST = ("DELETE FROM session_messages WHERE id = (SELECT id FROM session_messages "
                  "WHERE client_id = ? AND id > ? AND released = 0 ORDER BY id LIMIT 1)")
Row = tuple[int, str, bytes, int, int, "bytes | None", float, "float | None", "str | None", int]
_DELETE = "DELETE FROM session_messages WHERE id = ?"
_DELETE_THROUGH = ("DELETE FROM session_messages WHERE client_id = ? AND released = 0 "
                   "AND id <= ?")
_SAVE = ("INSERT INTO sessions (client_id, expiry, disconnected_at, subscriptions, owner) "
         "VALUES (?,?,?,'[]',?) ON CONFLICT(client_id) DO UPDATE SET expiry = excluded.expiry, "
         "disconnected_at = excluded.disconnected_at, owner = excluded.owner")
_SUBSCRIBE = ("INSERT OR REPLACE INTO session_subscriptions (client_id, filter, qos, no_local, "
              "retain_as_published, retain_handling, identifier) VALUES (?,?,?,?,?,?,?)")
_UNSUBSCRIBE = "DELETE FROM session_subscriptions WHERE client_id = ? AND filter = ?"
_UNSUBSCRIBE_ALL = "DELETE FROM session_subscriptions WHERE client_id = ?"


@dataclass(slots=True)
class StoredSession:
    client_id: str
    expiry: int
    disconnected_at: float
    subscriptions: list[tuple[Subscription, int]]
    owner: str | None = None
    incoming: list[int] = field(default_factory=list)  # QoS 2 packet ids awaiting PUBREL
    backlog: tuple[int, int] = (0, 0)  # messages and bytes owed, left on disk
    released: list[tuple[int, Message, int, int]] = field(default_factory=list)


class SessionStore:
    def __init__(self, committer: Committer) -> None:
        self._c = committer
        row = committer.connection.execute("SELECT max(id) FROM session_messages").fetchone()
        self._ids = itertools.count((row[0] or 0) + 1)
        self._marks: dict[str, int] = {}  # acknowledged up to here, deleted at the next commit

    def save(self, client_id: str, expiry: int, disconnected_at: float,
             owner: str | None) -> None:
        """The session row (its subscriptions are rows of their own); `owner` is the user
        name of the client that created it (None: anonymous)."""
        self._c.write(_SAVE, (client_id, expiry, disconnected_at, encode_owner(owner)))

    def subscribe(self, client_id: str, subscriptions: list[tuple[Subscription, int]]) -> None:
        """Add or replace these subscriptions (with their subscription identifiers)."""
        self._c.write_many(_SUBSCRIBE, [
            (client_id, s.filter, s.qos, int(s.no_local), int(s.retain_as_published),
             s.retain_handling, ident) for s, ident in subscriptions])

    def unsubscribe(self, client_id: str, filters: list[str]) -> None:
        self._c.write_many(_UNSUBSCRIBE, [(client_id, f) for f in filters])

    def replace_subscriptions(self, client_id: str,
                              subscriptions: list[tuple[Subscription, int]]) -> None:
        """Exactly these subscriptions (a session that has just become persistent)."""
        self._c.write(_UNSUBSCRIBE_ALL, (client_id,))
        if subscriptions:
            self.subscribe(client_id, subscriptions)

    def delete(self, client_id: str) -> None:
        self.forget(client_id)
        self._c.write("DELETE FROM session_messages WHERE client_id = ?", (client_id,))

    def forget(self, client_id: str) -> None:
        """The session is no longer persistent; the messages it still owes stay until it ends
        (they are on their way to the connected client)."""
        self._c.write("DELETE FROM sessions WHERE client_id = ?", (client_id,))
        self._c.write(_UNSUBSCRIBE_ALL, (client_id,))
        self._c.write("DELETE FROM session_incoming WHERE client_id = ?", (client_id,))

    def receive_qos2(self, client_id: str, packet_id: int) -> None:
        """A QoS 2 PUBLISH of this client was stored: its id is kept until PUBREL."""
        self._c.write("INSERT OR REPLACE INTO session_incoming (client_id, packet_id) "
                      "VALUES (?,?)", (client_id, packet_id))

    def release_qos2(self, client_id: str, packet_id: int) -> None:
        self._c.write("DELETE FROM session_incoming WHERE client_id = ? AND packet_id = ?",
                      (client_id, packet_id))

    def add_message(self, client_id: str, message: Message, qos: int, retain: bool = False,
                    sub_ids: tuple[int, ...] = ()) -> int:
        """Persist one owed delivery; returns its row id for `remove_message`."""
        row_id = next(self._ids)
        self._c.bytes_written += message.size
        props = message.properties
        if sub_ids:  # per delivery, never part of the stored message's own properties
            props = {**props, "subscription_identifier": list(sub_ids)}
        self._c.write_grouped(_INSERT, (
            row_id, client_id, message.topic, message.payload, qos, int(retain),
            pack_props(props), message.created, message.expires_at, message.client_id,
            message.size))
        return row_id

    def read_backlog(self, client_id: str, after: int, limit: int, max_bytes: int,
                     done: Callable[[list[Stored], bool], None]) -> None:
        """The next owed messages after row `after`: at most `limit` of them and about
        `max_bytes`; `done(outgoing, complete)`, complete when no row is left after them."""
        def query(conn: sqlite3.Connection) -> tuple[list[Row], bool]:
            rows: list[Row] = []
            total = 0
            cursor = conn.execute(_READ + " LIMIT ?", (client_id, after, limit + 1))
            for row in cursor:
                if len(rows) >= limit or (rows and total + row[9] > max_bytes):
                    return rows, False
                rows.append(row)
                total += row[9]
            return rows, True

        self._c.read(query, lambda result: done([_stored(r) for r in result[0]], result[1]))

    def remove_oldest(self, client_id: str, after: int) -> None:
        """Drop the oldest owed message after row `after` (a backlog over its cap)."""
        self._c.write(_REMOVE_OLDEST, (client_id, after))

    def release(self, row_id: int, packet_id: int) -> None:
        """PUBREC arrived for a stored QoS 2 message: only PUBREL may follow, even after a
        restart."""
        self._c.write("UPDATE session_messages SET released = 1, packet_id = ? WHERE id = ?",
                      (packet_id, row_id))

    def remove_message(self, row_id: int) -> None:
        self._c.write_grouped(_DELETE, (row_id,))

    def remove_through(self, client_id: str, row_id: int) -> None:
        """Every unreleased row of this session up to `row_id` is done: they are deleted by
        one statement per session in the next transaction (after the writes before it)."""
        marks = self._marks
        if not marks:
            self._c.defer(self._delete_through)
        if marks.get(client_id, 0) < row_id:
            marks[client_id] = row_id

    def _delete_through(self) -> None:
        marks, self._marks = self._marks, {}
        self._c.write_many(_DELETE_THROUGH, marks.items())

    def load_all(self) -> list[StoredSession]:
        """Every stored session with its owed messages in order (start-up, synchronous)."""
        conn = self._c.connection
        sessions: dict[str, StoredSession] = {}
        for client_id, expiry, disconnected_at, owner in conn.execute(
                "SELECT client_id, expiry, disconnected_at, owner FROM sessions"):
            sessions[client_id] = StoredSession(client_id, expiry, disconnected_at or 0.0, [],
                                                owner)
        for client_id, f, q, nl, rap, rh, ident in conn.execute(
                "SELECT client_id, filter, qos, no_local, retain_as_published, retain_handling, "
                "identifier FROM session_subscriptions ORDER BY rowid"):
            stored = sessions.get(client_id)
            if stored is not None:
                stored.subscriptions.append(
                    (Subscription(f, q, bool(nl), bool(rap), rh), ident or 0))
        for client_id, packet_id in conn.execute(
                "SELECT client_id, packet_id FROM session_incoming"):
            stored = sessions.get(client_id)
            if stored is not None:
                stored.incoming.append(packet_id)
        for client_id, count, size in conn.execute(
                "SELECT client_id, count(*), total(size) FROM session_messages "
                "WHERE released = 0 GROUP BY client_id"):
            stored = sessions.get(client_id)
            if stored is not None:
                stored.backlog = (count, int(size))
        for row in conn.execute(  # through the index, per session: no payload is read
                "SELECT m.id, m.client_id, m.topic, m.payload, m.qos, m.retain, m.props, "
                "m.created, m.expires_at, m.origin, m.packet_id FROM sessions AS s "
                "JOIN session_messages AS m ON m.client_id = s.client_id AND m.released = 1 "
                "ORDER BY m.id"):
            stored = sessions.get(row[1])
            if stored is not None:
                msg = message_from_row(row[2], row[3], row[4], row[5], row[6], row[9], row[7],
                                       row[8])
                stored.released.append((row[0], msg, row[4], row[10]))
        return list(sessions.values())

    def delete_orphans(self) -> None:
        """Messages of sessions that stopped being persistent before a restart."""
        self._c.write("DELETE FROM session_messages WHERE client_id NOT IN "
                      "(SELECT client_id FROM sessions)")


def _stored(row: Row) -> Stored:
    row_id, topic, payload, qos, retain, blob, created, expires_at, origin, size = row
    props: Properties = unpack_props(blob) if blob else {}
    sub_ids = props.pop("subscription_identifier", None) if blob else None
    if size <= 0:  # a row of schema 5 or older
        size = message_size(topic, payload, props)
    message = restored(topic, payload, qos, bool(retain), props, origin or "", created or 0.0,
                       expires_at, size)
    return row_id, message, qos, bool(retain), tuple(sub_ids or ())


def encode_owner(username: str | None) -> str:
    return "a" if username is None else f"u:{username}"


def decode_owner(owner: str) -> str | None:
    """The user name `encode_owner` stored (None: anonymous)."""
    return None if owner == "a" else owner[2:]


class RetainedTable:
    """Retained messages on disk, rewritten per topic."""

    def __init__(self, committer: Committer) -> None:
        self._c = committer

    def persist(self, topic: str, message: Message | None) -> None:
        if message is None:
            self._c.write("DELETE FROM retained WHERE topic = ?", (topic,))
        else:
            self._c.write("INSERT OR REPLACE INTO retained (topic, payload, qos, props, created, "
                          "expires_at, client_id) VALUES (?,?,?,?,?,?,?)",
                          (topic, message.payload, message.qos, pack_props(message.properties),
                           message.created, message.expires_at, message.client_id))

    def load_all(self) -> list[Message]:
        return [message_from_row(t, p, q, 1, props, cid, created, exp)
                for t, p, q, props, created, exp, cid in self._c.connection.execute(
                    "SELECT topic, payload, qos, props, created, expires_at, client_id "
                    "FROM retained")]
