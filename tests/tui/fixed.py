"""A fixed data source for the snapshot tests ONLY: the same `DataSource` methods the app calls
on the admin API, answering prepared figures so that screenshots are byte-for-byte stable.
Behaviour is tested against a real gateway (test_live.py), never against this."""

from __future__ import annotations

import base64
import dataclasses
import math
from typing import Any

from tui.model import DeadLetter, QueueDetail, Snapshot, Storage
from tui.source import AdminError

FRAMES = 16


def _queue(name: str, kind: str = "standard", **figures: Any) -> dict[str, Any]:
    return {"name": name, "filter": figures.pop("filter", name), "kind": kind,
            "dispatch": figures.pop("dispatch", "round_robin"), **figures}


def frame(i: int) -> Snapshot:
    """Frame `i` of a made-up minute of the demo: the images backlog swells and drains,
    the telemetry burst lags past the 30 s alert."""
    swell = max(0.0, math.sin(i / FRAMES * math.pi * 1.5))
    images = int(12 + 180 * swell)
    queues = [
        _queue("images/+", dispatch="least_inflight", depth=images, bytes=images * 2048,
               consumers=3, inflight=12, in_rate=6.5, out_rate=5.9, lag_messages=images - 12,
               lag_seconds=round(2 + 20 * swell, 1), oldest_age=round(1 + 19 * swell, 1),
               enqueued=1200 + 7 * i, acked=1000 + 6 * i, redelivered=3, dead_lettered=2,
               nacked=7, max_messages=250, max_bytes=1 << 30),
        _queue("$dlq/images/+", "dead_letter", filter="$dlq/images/+", depth=2, bytes=4096,
               lag_messages=2, lag_seconds=340.0, oldest_age=340.0, enqueued=2,
               max_messages=1_000_000, max_bytes=1 << 30),
        _queue("lights/+/commands", "template", last_value_key="user_property:command_type"),
        _queue("lights/light-1/commands", "instance", depth=2, bytes=140, lag_messages=2,
               lag_seconds=8.5, oldest_age=8.5, in_rate=0.2, replaced=5),
        _queue("lights/light-2/commands", "instance", depth=0, consumers=1, acked=14,
               out_rate=0.3),
        _queue("telemetry", filter="telemetry/#", depth=2000 - 40 * i, bytes=(2000 - 40 * i) * 9,
               consumers=1, inflight=10, in_rate=41.0, out_rate=60.0,
               lag_messages=1990 - 40 * i, lag_seconds=20.0 + i, oldest_age=19.0 + i,
               blocked=4, max_messages=2000, max_bytes=1 << 30),
    ]
    clients = [
        {"client_id": cid, "peer": f"127.0.0.1:{41000 + n}", "username": user,
         "protocol": proto, "listener": "tcp://127.0.0.1:1883", "keepalive": 20,
         "connected_seconds": 65.0 + n, "inflight": infl, "queued": 0}
        for n, (cid, user, proto, infl) in enumerate([
            ("cam-1", "", "5.0", 1), ("cam-2", "", "5.0", 0), ("cloud-app", "app", "5.0", 0),
            ("historian", "", "5.0", 10), ("light-2", "light-2", "3.1.1", 0),
            ("ocr-1", "worker", "5.0", 4), ("ocr-2", "worker", "5.0", 4),
            ("ocr-3", "worker", "5.0", 4), ("sensor-hub", "", "5.0", 100)])]
    broker = {"uptime": 3723 + i, "queues/backlog": images + 2 + 2 + 2000 - 40 * i}
    return Snapshot.parse(queues, clients, broker, STORAGE, history(i))


SAMPLED = 120  # the gateway had sampled ten minutes (at 5 s) when top attached


def history(i: int) -> dict[str, Any]:
    """The served history at frame `i`: all of it at the first fetch, then one new sample per
    frame (the real gateway samples every 5 s; the frames are faster, nothing depends on it)."""
    taken = SAMPLED + i
    fresh = range(1, taken + 1) if i == 0 else [taken]

    def swell(n: int) -> float:
        return max(0.0, math.sin(n / SAMPLED * math.pi * 3))

    images = {"start": 1, "depth": [int(12 + 180 * swell(n)) for n in fresh],
              "lag_messages": [int(180 * swell(n)) for n in fresh],
              "lag_seconds": [round(2 + 20 * swell(n), 1) for n in fresh],
              "in_rate": [round(6 + 2 * swell(n), 1) for n in fresh],
              "out_rate": [5.9 for _ in fresh]}
    telemetry = {"start": 61, "depth": [1400 + 10 * (135 - n) for n in fresh if n >= 61],
                 "lag_messages": [1390 + 10 * (135 - n) for n in fresh if n >= 61],
                 "lag_seconds": [20.0 + n / 4 for n in fresh if n >= 61],
                 "in_rate": [41.0 for n in fresh if n >= 61],
                 "out_rate": [60.0 for n in fresh if n >= 61]}
    return {"interval": 5.0, "window": 900.0, "taken": taken,
            "ages": [5.0 * (taken - n) + 1.0 for n in fresh],
            "queues": {"images/+": images, "telemetry": telemetry}}


STORAGE = {"database_bytes": 48 << 20, "wal_bytes": 3 << 20, "disk_free": 5 << 30,
           "min_free_bytes": 64 << 20, "disk_full": False, "memory_in_use": 9 << 20,
           "memory_budget": 64 << 20, "memory_full": False, "producers_paused": 0,
           "store_error": None}


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80corrupt frame"
JOB = b'{"job": 4711, "camera": "cam-3", "frame": "0001.png", "retry": true}'


def _dead(topic: str, payload: bytes, reason: str, tries: int, client: str) -> dict[str, Any]:
    marks = [["x-death-reason", reason], ["x-death-queue", "images/+"],
             ["x-death-deliveries", str(tries)]]
    return {"topic": topic, "payload": payload[:80].decode("utf-8", "replace"),
            "bytes": len(payload), "client_id": client, "created": 0.0, "deliveries": 0,
            "reason": reason, "source": "images/+", "died_after": tries, "qos": 1,
            "properties": {"content_type": "image/png" if payload == PNG else
                           "application/json", "user_property": marks},
            "payload_base64": base64.b64encode(payload).decode()}


DEAD_LETTERS = [_dead("images/cam-2", PNG, "max_deliveries", 5, "cam-2"),
                _dead("images/cam-3", JOB, "packet_too_large", 1, "cam-3")]

DETAIL = {
    "settings": {"filter": "images/+", "name": "", "dispatch": "least_inflight",
                 "last_value_key": "", "template": False, "max_messages": 1_000_000,
                 "overflow": "block", "max_inflight": 32, "max_deliveries": 5},
    "origin": "config",
    "consumers": [{"client_id": "ocr-1", "qos": 1, "inflight": 4, "acked": 612, "active": True},
                  {"client_id": "ocr-2", "qos": 1, "inflight": 4, "acked": 377, "active": True},
                  {"client_id": "ocr-3", "qos": 1, "inflight": 4, "acked": 61, "active": True}],
    "dead_letter": {"name": "$dlq/images/+", "depth": 2, "sample": DEAD_LETTERS},
}


class FixedSource:
    """Frame after frame on each `fetch()`; after `fail_after` fetches, the gateway is
    'unreachable'. Actions are refused (snapshots never perform them)."""

    where = "http://192.0.2.10:18083"

    def __init__(self, fail_after: int | None = None, storage: dict[str, Any] | None = None
                 ) -> None:
        self.fetches = 0
        self.fail_after = fail_after
        self.storage = storage  # other storage figures than STORAGE

    def fetch(self, since: int) -> Snapshot:
        self.fetches += 1
        if self.fail_after is not None and self.fetches > self.fail_after:
            raise AdminError(f"cannot reach the gateway at {self.where}: "
                             "[Errno 111] Connection refused")
        snapshot = frame(min(self.fetches - 1, FRAMES - 1))
        if self.storage is None:
            return snapshot
        return dataclasses.replace(snapshot, storage=Storage.parse({**STORAGE, **self.storage}))

    def queue(self, name: str) -> QueueDetail:
        stats = next(q for q in frame(FRAMES - 1).queues if q.name == name)
        return QueueDetail.parse({"stats": _as_dict(stats), **DETAIL})

    def messages(self, name: str, limit: int) -> list[DeadLetter]:
        return [DeadLetter.parse({**m, "payload_base64": None}) for m in DEAD_LETTERS[:limit]]

    def message(self, name: str, index: int) -> DeadLetter | None:
        return DeadLetter.parse(DEAD_LETTERS[index]) if index < len(DEAD_LETTERS) else None

    def replay(self, name: str, offset: int | None = None) -> int:
        raise AdminError("the fixed source performs no actions")

    def create(self, fields: dict[str, Any]) -> str:
        raise AdminError("the fixed source performs no actions")

    def purge(self, name: str) -> int:
        raise AdminError("the fixed source performs no actions")

    def delete(self, name: str) -> None:
        raise AdminError("the fixed source performs no actions")

    def notice(self) -> str | None:
        return None


def _as_dict(stats: Any) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}
