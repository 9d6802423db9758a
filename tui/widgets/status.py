"""The one-line summary at the top and the connection-lost banner under it."""

from __future__ import annotations

from typing import Any

from textual.markup import escape
from textual.widgets import Static

from tui import fmt
from tui.model import Snapshot, Storage


class StatusLine(Static):
    """Gateway address, queue and client counts, backlog and uptime."""

    def show(self, where: str, snap: Snapshot | None, alerts: int) -> None:
        where = escape(where.removeprefix("http://"))
        if snap is None:
            self.update(f"edgeq top · {where} · connecting…")
            return
        broker: dict[str, Any] = snap.broker
        parts = [where, f"{len(snap.queues)} queues",
                 f"{len(snap.clients)} clients",
                 f"backlog {fmt.count(_int(broker.get('queues/backlog')))}",
                 f"up {fmt.seconds(_int(broker.get('uptime')))}"]
        if alerts:
            parts.append(f"[b]{alerts} lagging[/b]")
        self.update(" · ".join(parts))


class StorageLine(Static):
    """The store's health, always on screen: database and WAL size, free disk against the
    reserve, memory against the budget, paused producers; red (`-alert`) when the disk or
    memory is full, producers are paused or the store reports an error."""

    def on_mount(self) -> None:
        """A screen pushed between two refreshes shows the app's last figures at once."""
        snapshot = getattr(self.app, "snapshot", None)
        self.show(snapshot.storage if isinstance(snapshot, Snapshot) else None)

    def show(self, storage: Storage | None) -> None:
        if storage is None:
            self.update("store: waiting for the first figures…")
            return
        s = storage
        memory = (f"mem {fmt.size(s.memory_in_use)}/{fmt.size(s.memory_budget)} "
                  f"{_percent(s.memory_in_use, s.memory_budget)}")
        parts = [f"db {fmt.size(s.database_bytes)}+wal {fmt.size(s.wal_bytes)}",
                 f"free {fmt.size(s.disk_free)} (reserve {fmt.size(s.min_free_bytes)})",
                 memory, f"paused {s.producers_paused}"]
        alarms = [text for on, text in ((s.disk_full, "DISK FULL"),
                                        (s.memory_full, "MEMORY FULL")) if on]
        if s.store_error:
            alarms.append(f"store error: {escape(fmt.printable(s.store_error))}")
        line = " · ".join(parts)
        self.update(f"[b]{' · '.join(alarms)}[/b] · {line}" if alarms else line)
        self.set_class(s.trouble, "-alert")


def _percent(used: int, limit: int) -> str:
    return f"{100 * used // limit}%" if limit else "-"


class Banner(Static):
    """Shown only while the gateway cannot be reached (the app adds the `-lost` class)."""

    def show_lost(self, reason: str, attempts: int) -> None:
        self.update(f"Connection lost — {escape(reason)}\n"
                    f"Retrying every second (attempt {attempts}); figures below are stale.")


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
