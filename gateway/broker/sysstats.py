"""`$SYS/` statistics, as Mosquitto publishes them, plus edgeq's queue statistics.

Published retained every `mqtt.sys_interval` seconds (not persisted). `$SYS/broker/queues` is
one JSON document with every queue's statistics, for dashboards and `edgeq top`;
`$SYS/broker/queues/<name>/<field>` one retained topic per figure of `QUEUE_TOPICS`, with
wildcard levels of the name spelled out (`images/+` -> `$SYS/broker/queues/images/any/depth`),
cleared (empty retained message) once the queue is deleted;
`$SYS/broker/bridges` the same for bridges, with `$SYS/broker/bridges/<name>/...` per field
(docs/bridge.md).
"""

from __future__ import annotations

import json
import time
import weakref
from typing import TYPE_CHECKING

from gateway import __version__
from gateway.messages import Message
from gateway.queuenames import spelled_out

if TYPE_CHECKING:
    from gateway.broker.server import Broker

# the per-queue topics; every field is in the `$SYS/broker/queues` JSON document
QUEUE_TOPICS = ("depth", "inflight", "consumers", "lag_messages", "lag_seconds")
# per broker, the queues whose topics were published last time (to clear those of deleted ones)
_published: weakref.WeakKeyDictionary[Broker, set[str]] = weakref.WeakKeyDictionary()


def snapshot(broker: Broker) -> dict[str, object]:
    """The broker figures behind `$SYS/broker/...` (also served by the admin API)."""
    s = broker.stats
    connected = len(broker.live)
    return {
        "version": f"edgeq {__version__}",
        "uptime": int(time.monotonic() - broker.started_at),
        "clients/connected": connected,
        "clients/disconnected": sum(1 for x in broker.sessions.values() if x.link is None),
        "clients/total": len(broker.sessions),
        "clients/maximum": s.clients_maximum,
        "clients/expired": s.expired,
        "clients/duplicate ids": broker.takeovers.duplicates,
        "messages/received": s.messages_received,
        "messages/sent": s.messages_sent,
        "messages/dropped": s.dropped,
        "bytes/received": s.bytes_received,
        "bytes/sent": s.bytes_sent,
        "subscriptions/count": broker.router.count,
        "retained messages/count": broker.retained.count,
        "connections/total": s.connections_total,
        "protocol errors": s.protocol_errors,
        "store/commits": broker.committer.commits,
        "store/failed": broker.committer.failed or "",
        "store/disk used": broker.disk.used,
        "store/disk free": broker.disk.free,
        "store/disk full": int(broker.disk.full),
        "store/disk refused": broker.disk.refused,
        "queues/backlog": broker.engine.backlog,
        **broker.logins.counts(),
        "sessions/queued": sum(len(x.backlog) for x in broker.sessions.values()),
        "sessions/queued bytes": sum(x.backlog.bytes for x in broker.sessions.values()),
        "sessions/dropped": broker.backlogs.dropped,
        "sessions/overflowing": broker.backlogs.overflowing,
        "memory/in use": broker.memory_in_use(),
        "limits/subscriptions refused": broker.limits.subscriptions.total,
        "limits/connections refused": broker.limits.connections.total,
    }


def publish(broker: Broker) -> None:
    now = broker.clock()
    for key, value in snapshot(broker).items():
        _put(broker, f"$SYS/broker/{key}", str(value), now)
    stats = [queue_stats_dict(q) for q in broker.engine.stats()]
    _put(broker, "$SYS/broker/queues", json.dumps(stats), now)
    names = {spelled_out(str(q["name"])): q for q in stats}
    for gone in _published.get(broker, set()) - names.keys():
        for field in QUEUE_TOPICS:  # a deleted queue: clear its retained figures
            _put(broker, f"$SYS/broker/queues/{gone}/{field}", "", now)
    _published[broker] = set(names)
    for name, q in names.items():
        for field in QUEUE_TOPICS:
            _put(broker, f"$SYS/broker/queues/{name}/{field}", str(q[field]), now)
    for service in broker.services:
        for topic, payload in service.sys_entries():
            _put(broker, topic, payload, now)


def queue_stats_dict(stats: object) -> dict[str, object]:
    import msgspec

    return msgspec.to_builtins(stats)  # type: ignore[no-any-return]


def _put(broker: Broker, topic: str, payload: str, now: float) -> None:
    broker.publish(Message(topic, payload.encode(), 0, True, {}, "", now))
