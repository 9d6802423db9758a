"""Queue statistics: rates smoothed in `tick`, snapshots for `$SYS/`, Prometheus, API and TUI.

Rates are exponentially weighted moving averages of messages per second with a 10-second time
constant, updated once per tick. Lag: `lag_messages` ready but not yet delivered;
`lag_seconds` age of the oldest unacknowledged message (ready or in flight); `oldest_age` age of
the oldest message still waiting for a delivery.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from typing import Any

import msgspec

from gateway.messages import Message
from gateway.queues.deadletter import DELIVERIES, REASON, SOURCE, mark
from gateway.queues.model import QueueStats
from gateway.queues.queue import Queue

RATE_TIME_CONSTANT = 10.0
SAMPLE_SIZE = 10
PREVIEW_BYTES = 80


def update_rates(q: Queue, dt: float) -> None:
    if dt <= 0:
        return
    alpha = 1.0 - math.exp(-dt / RATE_TIME_CONSTANT)
    enqueued, out = q.c.enqueued, q.c.acked
    seen_in, seen_out = q.seen
    q.in_rate += alpha * ((enqueued - seen_in) / dt - q.in_rate)
    q.out_rate += alpha * ((out - seen_out) / dt - q.out_rate)
    q.seen = (enqueued, out)


def snapshot(q: Queue, now: float) -> QueueStats:
    waiting = q.ready[0].created if q.ready else None
    sent = [e.created for m in q.members for e in m.inflight.values()]
    oldest_sent = min(sent) if sent else None
    unacked = min(t for t in (waiting, oldest_sent) if t is not None) if (
        waiting is not None or oldest_sent is not None) else None
    c = q.c
    return QueueStats(
        name=q.name, filter=q.spec.filter, kind=q.kind, dispatch=q.spec.dispatch,
        depth=q.depth, bytes=q.bytes, consumers=sum(1 for m in q.members if m.active),
        inflight=q.inflight, in_rate=round(q.in_rate, 2), out_rate=round(q.out_rate, 2),
        lag_messages=q.ready_count(),
        lag_seconds=_age(now, unacked), oldest_age=_age(now, waiting),
        enqueued=c.enqueued, acked=c.acked, redelivered=c.redelivered, dropped=c.dropped,
        rejected=c.rejected, replaced=c.replaced, dead_lettered=c.dead_lettered,
        expired=c.expired, nacked=c.nacked, blocked=c.blocked,
        key_errors=c.key_errors, oversize=c.oversize)


def _age(now: float, then: float | None) -> float:
    return round(max(0.0, now - then), 3) if then else 0.0


def details(q: Queue, now: float, dead_letter: Queue | None) -> dict[str, Any]:
    """Everything `edgeq queue show` prints: stats, settings, consumers, dead letters."""
    return {
        "stats": dataclasses.asdict(snapshot(q, now)),
        "settings": msgspec.to_builtins(q.spec),
        "origin": q.origin,
        "parent": q.parent or None,
        "bound": q.bound or q.kind == "template",
        "consumers": [
            {"client_id": m.consumer.client_id, "qos": m.qos, "inflight": len(m.inflight),
             "acked": m.acked, "active": m.active}
            for m in q.members],
        "dead_letter": None if dead_letter is None else {
            "name": dead_letter.name, "depth": dead_letter.depth,
            "sample": [preview(e.message, e.deliveries)
                       for e in list(dead_letter.ready)[:SAMPLE_SIZE] if e.message],
        },
    }


def preview(message: Message, deliveries: int, whole: bool = False) -> dict[str, Any]:
    """A message for people: topic, the payload's start as text, its properties (binary ones
    in hex), and for a dead letter why, where and after how many deliveries it died."""
    payload = message.payload
    text = payload[:PREVIEW_BYTES].decode("utf-8", "replace")
    died_after = mark(message, DELIVERIES)
    shown = {"topic": message.topic, "payload": text, "bytes": len(payload),
             "client_id": message.client_id, "created": message.created,
             "deliveries": deliveries, "reason": mark(message, REASON),
             "source": mark(message, SOURCE),
             "died_after": int(died_after) if died_after and died_after.isdigit() else None,
             "qos": message.qos, "properties": _properties(message)}
    if whole:
        shown["payload_base64"] = base64.b64encode(payload).decode()
    return shown


def _properties(message: Message) -> dict[str, Any]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in message.properties.items()}
