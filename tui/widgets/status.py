"""The one-line summary at the top and the connection-lost banner under it."""

from __future__ import annotations

from typing import Any

from textual.markup import escape
from textual.widgets import Static

from tui import fmt
from tui.model import Snapshot


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
