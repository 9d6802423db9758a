"""The backlog against a model: random pushes, disconnects, reconnects and acknowledgements
(some out of order) with reads answered late, as the committer does. Everything stored is
delivered once, in order, the counts match the rows, and the range deletes of acknowledged rows
never take a row that is not done (gateway/broker/backlog.py)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from gateway.broker.backlog import BacklogContext, Stored
from gateway.broker.session import Outgoing, Session
from gateway.messages import received
from gateway.mqtt.packets import MQTT_311, PubAck


class Rows:
    """session_messages of one client, with reads answered when `settle` runs."""

    def __init__(self) -> None:
        self.rows: dict[int, bytes] = {}
        self.pending: list[Callable[[], None]] = []
        self.done: set[int] = set()  # acknowledged by the client

    def read_backlog(self, client_id: str, after: int, limit: int, max_bytes: int,
                     done: Callable[[list[Stored], bool], None]) -> None:
        def answer() -> None:
            ids = sorted(i for i in self.rows if i > after)
            chosen = ids[:limit]
            out: list[Stored] = [(i, received("t", self.rows[i], 1, False, {}, "p", 0.0), 1,
                                  False, ()) for i in chosen]
            done(out, len(ids) <= limit)
        self.pending.append(answer)

    def remove_message(self, row_id: int) -> None:
        self.rows.pop(row_id, None)

    def remove_through(self, client_id: str, row_id: int) -> None:
        through = [i for i in self.rows if i <= row_id]
        assert self.done.issuperset(through), "a range delete took a row not acknowledged"
        for i in through:
            del self.rows[i]

    def remove_oldest(self, client_id: str, after: int) -> None:
        ids = sorted(i for i in self.rows if i > after)
        if ids:
            del self.rows[ids[0]]

    def settle(self) -> None:
        while self.pending:
            self.pending.pop(0)()


class Link:
    """One connection; `first_sends` (shared by a session's links) records each store id
    the first time it is sent."""

    def __init__(self, first_sends: list[int]) -> None:
        self.sent: list[tuple[int, Outgoing]] = []
        self.first_sends = first_sends

    def send_publish(self, out: Outgoing, packet_id: int) -> None:
        self.sent.append((packet_id, out))
        if not out.dup:
            self.first_sends.append(out.store_id)

    def send_pubrel(self, packet_id: int) -> None:
        raise AssertionError("QoS 1 only")

    def writable(self) -> bool:
        return True


@pytest.mark.parametrize("seed", range(8))
def test_every_stored_message_arrives_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    first_sends: list[int] = []
    store = Rows()
    session = Session.new("c", BacklogContext(store, lambda: 0.0, max_messages=0, max_bytes=0),
                          expiry=60)
    next_id, delivered, link = 1, [], None
    for _ in range(3000):
        action = rng.random()
        if action < 0.45:
            payload = b"%d" % next_id
            store.rows[next_id] = payload
            session.deliver(Outgoing(received("t", payload, 1, False, {}, "p", 0.0), 1,
                                     store_id=next_id))
            next_id += 1
        elif action < 0.75 and link is not None and link.sent:
            packet_id, out = link.sent.pop(rng.randrange(min(3, len(link.sent))))
            if session.mqtt.puback(PubAck(packet_id)) is not None:
                delivered.append(out.store_id)
                store.done.add(out.store_id)
                session.backlog.done("c", out)
                session.drain()
        elif action < 0.8:
            if link is None:
                link = Link(first_sends)
                session.mqtt.connect(MQTT_311, send_maximum=rng.randint(1, 20))
                session.resume(link)
            else:
                session.detach()
                link = None
        else:
            store.settle()
    if link is None:
        link = Link(first_sends)
        session.mqtt.connect(MQTT_311, send_maximum=20)
    session.resume(link)
    while store.rows.keys() - store.done:
        store.settle()
        for packet_id, out in list(link.sent):
            link.sent.remove((packet_id, out))
            if session.mqtt.puback(PubAck(packet_id)) is not None:
                delivered.append(out.store_id)
                store.done.add(out.store_id)
                session.backlog.done("c", out)
                session.drain()
    assert sorted(delivered) == list(range(1, next_id))  # each once
    assert sorted(first_sends) == first_sends  # sent in order, whatever was on disk
    assert not store.rows  # nothing in flight: the last range delete took the rest
    assert len(session.backlog) == 0 and session.backlog.bytes == 0
    assert session.backlog.ctx.memory == 0


def test_drop_oldest_at_the_cap_while_offline_deletes_the_oldest_rows() -> None:
    store = Rows()
    session = Session.new("c", BacklogContext(store, lambda: 0.0, max_messages=5), expiry=60)
    for i in range(1, 9):
        store.rows[i] = b"%d" % i
        assert session.deliver(Outgoing(received("t", b"%d" % i, 1, False, {}, "p", 0.0), 1,
                                        store_id=i))
    assert sorted(store.rows) == [4, 5, 6, 7, 8]
    assert len(session.backlog) == 5 and session.backlog.ctx.dropped == 3


def test_a_message_never_acknowledged_keeps_the_range_but_not_the_memory() -> None:
    """The oldest message stays unacknowledged while thousands after it are: those go one by
    one, what is kept to move the range later stays bounded, and when the oldest is
    acknowledged at last one range delete takes what is left."""
    store = Rows()
    session = Session.new("c", BacklogContext(store, lambda: 0.0, max_messages=0, max_bytes=0),
                          expiry=60)
    link = Link([])
    session.mqtt.connect(MQTT_311, send_maximum=10)
    session.resume(link)
    stuck: tuple[int, Outgoing] | None = None
    for row_id in range(1, 6001):
        store.rows[row_id] = b"%d" % row_id
        session.deliver(Outgoing(received("t", b"x", 1, False, {}, "p", 0.0), 1,
                                 store_id=row_id))
        packet_id, out = link.sent.pop()
        if stuck is None:
            stuck = (packet_id, out)
            continue
        assert session.mqtt.forget(packet_id) is out
        store.done.add(row_id)
        session.backlog.done("c", out)
    assert sorted(store.rows) == [1]
    assert len(session.backlog.early or ()) <= 4096 and len(session.backlog.flight or ()) <= 4097
    packet_id, out = stuck
    assert session.mqtt.forget(packet_id) is out
    store.done.add(out.store_id)
    session.backlog.done("c", out)
    assert not store.rows and not session.backlog.flight
