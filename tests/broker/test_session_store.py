"""The session store over a real SQLite file: grouped writes keep their order, backlogs are
read back in pages, start-up reads counts and never payloads (gateway/store/sessions.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway.messages import received
from gateway.store.committer import Committer
from gateway.store.db import migrate
from gateway.store.sessions import SessionStore, Stored


def open_store(path: Path, loop: asyncio.AbstractEventLoop) -> tuple[Committer, SessionStore]:
    committer = Committer(path, "normal", loop)
    migrate(committer.connection, path)
    return committer, SessionStore(committer)


def settle(loop: asyncio.AbstractEventLoop, committer: Committer) -> None:
    while committer.busy:
        loop.run_until_complete(asyncio.sleep(0))


def test_grouped_deletes_never_run_before_the_insert_they_follow(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    committer, store = open_store(tmp_path / "s.db", loop)
    message = received("t", b"x", 1, False, {}, "p", 0.0)
    first = store.add_message("c", message, 1)
    store.remove_message(first)  # a group of deletes starts
    second = store.add_message("c", message, 1)  # an insert after it
    store.remove_message(second)  # must not join the first group, which runs before it
    settle(loop, committer)
    committer.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT count(*) FROM session_messages").fetchone()[0] == 0
    loop.close()


def test_a_backlog_is_read_in_pages_bounded_in_messages_and_bytes(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    committer, store = open_store(tmp_path / "s.db", loop)
    store.save("c", 60, 0.0, None)
    ids = [store.add_message("c", received("t", b"x" * 1000, 1, False, {}, "p", 0.0), 1,
                             True, (4,)) for _ in range(10)]
    pages: list[tuple[list[Stored], bool]] = []
    store.read_backlog("c", 0, 3, 1_000_000, lambda rows, done: pages.append((rows, done)))
    store.read_backlog("c", ids[2], 100, 2500, lambda rows, done: pages.append((rows, done)))
    store.read_backlog("c", ids[8], 100, 2500, lambda rows, done: pages.append((rows, done)))
    settle(loop, committer)
    assert [[r[0] for r in rows] for rows, _ in pages] == [ids[:3], ids[3:5], ids[9:]]
    assert [done for _, done in pages] == [False, False, True]
    _, message, qos, retain, sub_ids = pages[0][0][0]
    assert (message.payload, qos, retain, sub_ids) == (b"x" * 1000, 1, True, (4,))
    committer.close()
    reopened, again = open_store(tmp_path / "s.db", loop)
    [stored] = again.load_all()
    assert stored.backlog == (10, 10 * message.size)
    reopened.close()
    loop.close()


def test_a_range_delete_runs_after_every_write_before_it_and_only_once(tmp_path: Path) -> None:
    """`remove_through` marks of one commit become one statement per session, placed after the
    inserts submitted before the commit (even those submitted after the mark), and leave the
    rows above the mark, other sessions' rows and released rows alone."""
    loop = asyncio.new_event_loop()
    committer, store = open_store(tmp_path / "s.db", loop)
    message = received("t", b"x", 1, False, {}, "p", 0.0)
    ids = [store.add_message("c", message, 1) for _ in range(3)]
    store.remove_through("c", ids[0])
    ids += [store.add_message("c", message, 1) for _ in range(3)]  # inserted after the mark
    released = ids[4]
    store.release(released, 7)
    other = store.add_message("d", message, 1)
    store.remove_through("c", ids[4])  # raises the mark of the same commit
    store.remove_through("c", ids[1])  # a lower one changes nothing
    settle(loop, committer)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        left = [r[0] for r in conn.execute("SELECT id FROM session_messages ORDER BY id")]
    assert left == [released, ids[5], other]
    store.remove_through("c", ids[5])
    committer.close()  # a mark still pending at shutdown is written too
    with sqlite3.connect(tmp_path / "s.db") as conn:
        left = [r[0] for r in conn.execute("SELECT id FROM session_messages ORDER BY id")]
    assert left == [released, other]
    loop.close()
