"""The live table of queues: one row per queue, updated in place so the cursor stays put."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tui import fmt
from tui.model import QueueRow
from tui.widgets.compact import Col, CompactTable, Row

# Short headers so that all eleven columns fit in 80 columns; the help screen explains them.
COLUMNS = (
    Col("name", "queue", least=10, most=40),
    Col("kind", "type", 4),
    Col("depth", "depth", 5, right=True),
    Col("bytes", "bytes", 5, right=True),
    Col("consumers", "cons", 4, right=True),
    Col("inflight", "infl", 4, right=True),
    Col("in_rate", "in/s", 5, right=True),
    Col("out_rate", "out/s", 5, right=True),
    Col("lag_messages", "lag", 5, right=True),
    Col("lag_seconds", "lag s", 5, right=True),
    Col("oldest_age", "oldest", 6, right=True),
)


def cells(q: QueueRow, label: str) -> tuple[str, ...]:
    return (label, fmt.kind(q.kind), fmt.count(q.depth), fmt.size(q.bytes), str(q.consumers),
            fmt.count(q.inflight), fmt.rate(q.in_rate), fmt.rate(q.out_rate),
            fmt.count(q.lag_messages), fmt.seconds(q.lag_seconds), fmt.seconds(q.oldest_age))


class QueuesTable(CompactTable):
    """Queues by name; a queue whose lag passes the alert threshold gets a "!" before its name
    and the `queues-table--alert` style (red in app.tcss)."""

    COLUMNS = COLUMNS
    COMPONENT_CLASSES: ClassVar[set[str]] = CompactTable.COMPONENT_CLASSES | {
        "queues-table--alert"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows_shown: tuple[QueueRow, ...] = ()
        self.lag_alert = 0.0

    @property
    def selected(self) -> str | None:
        """The queue under the cursor, if any."""
        return self.cursor_key

    def show(self, queues: Sequence[QueueRow], lag_alert: float) -> None:
        self.rows_shown = tuple(sorted(queues, key=lambda q: q.name))
        self.lag_alert = lag_alert
        labels = fmt.queue_labels(self.rows_shown)
        alert_style = self.get_component_rich_style("queues-table--alert")
        rows = []
        for q in self.rows_shown:
            alert = self.is_alert(q)
            label = ("! " if alert else "") + labels.get(q.name, q.name)
            rows.append(Row(q.name, cells(q, label), alert_style if alert else ""))
        self.set_rows(rows)

    def is_alert(self, q: QueueRow) -> bool:
        return self.lag_alert > 0 and q.lag_seconds >= self.lag_alert
