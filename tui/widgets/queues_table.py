"""The live table of queues: one row per queue, updated in place so the cursor stays put."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tui import fmt
from tui.model import QueueRow
from tui.widgets.compact import Col, CompactTable, Row

# Short headers (the help screen explains them). In 80 columns the queue name keeps 16 cells and
# the columns with the highest `drop` are left out (bytes, blocked, nacked); 120 shows them all.
COLUMNS = (
    Col("name", "queue", least=16, most=40),
    Col("kind", "type", 4),
    Col("depth", "depth", 5, right=True),
    Col("fill", "fill", 4, right=True),
    Col("bytes", "bytes", 5, right=True, drop=5),
    Col("consumers", "cons", 4, right=True),
    Col("inflight", "infl", 4, right=True),
    Col("in_rate", "in/s", 5, right=True),
    Col("out_rate", "out/s", 5, right=True),
    Col("lag_messages", "lag", 5, right=True),
    Col("lag_seconds", "lag s", 5, right=True),
    Col("oldest_age", "oldest", 6, right=True, drop=2),
    Col("blocked", "blkd", 4, right=True, drop=3),
    Col("nacked", "nack", 4, right=True, drop=4),
    Col("dead_lettered", "dead", 4, right=True, drop=1),
)


def fill(q: QueueRow) -> str:
    """The fill of the queue's tighter limit: `57%`, `full`, or blank without limits."""
    if q.fill is None:
        return ""
    return "full" if q.fill >= 1 else f"{int(q.fill * 100)}%"


def cells(q: QueueRow, label: str) -> tuple[str, ...]:
    return (label, fmt.kind(q.kind), fmt.count(q.depth), fill(q), fmt.size(q.bytes),
            str(q.consumers), fmt.count(q.inflight), fmt.rate(q.in_rate),
            fmt.rate(q.out_rate), fmt.count(q.lag_messages), fmt.seconds(q.lag_seconds),
            fmt.seconds(q.oldest_age), fmt.count(q.blocked), fmt.count(q.nacked + q.rejected),
            fmt.count(q.dead_lettered))


def sort_value(q: QueueRow, key: str) -> str | float:
    """What column `key` sorts `q` by (its figure, not the rounded text)."""
    if key == "name":
        return q.name
    if key == "kind":
        return q.kind
    if key == "fill":
        return -1.0 if q.fill is None else q.fill
    if key == "nacked":
        return float(q.nacked + q.rejected)
    return float(getattr(q, key))


class QueuesTable(CompactTable):
    """Queues by name, or by any column (`sort_key`; figures largest first unless `reverse`),
    only those whose name contains `name_filter` (and, with `hide_empty`, that hold
    messages); a queue whose lag passes the alert threshold gets a "!" before its name and the
    `queues-table--alert` style (red in app.tcss)."""

    COLUMNS = COLUMNS
    COMPONENT_CLASSES: ClassVar[set[str]] = CompactTable.COMPONENT_CLASSES | {
        "queues-table--alert"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows_shown: tuple[QueueRow, ...] = ()
        self.lag_alert = 0.0
        self.queues: tuple[QueueRow, ...] = ()  # every queue of the last refresh
        self.sort_key = "name"
        self.reverse = False
        self.name_filter = ""
        self.hide_empty = False

    @property
    def selected(self) -> str | None:
        """The queue under the cursor, if any."""
        return self.cursor_key

    def show(self, queues: Sequence[QueueRow], lag_alert: float) -> None:
        self.queues = tuple(queues)
        self.lag_alert = lag_alert
        wanted = self.name_filter.casefold()
        shown = [q for q in self.queues if wanted in q.name.casefold()
                 and not (self.hide_empty and q.depth == 0)]
        shown.sort(key=lambda q: q.name)  # ties stay in name order
        descending = self.sort_key not in ("name", "kind")
        shown.sort(key=lambda q: sort_value(q, self.sort_key),
                   reverse=descending != self.reverse)
        self.rows_shown = tuple(shown)
        # a template's instances show as "└ light-1" under it, which needs the name order
        labels = fmt.queue_labels(shown) if self.sort_key == "name" else {}
        alert_style = self.get_component_rich_style("queues-table--alert")
        rows = []
        for q in self.rows_shown:
            alert = self.is_alert(q)
            label = ("! " if alert else "") + labels.get(q.name, q.name)
            rows.append(Row(q.name, cells(q, label), alert_style if alert else ""))
        self.set_rows(rows)

    def sort_by_next_column(self) -> None:
        """`s`: the next column on screen, in its natural order (names A-Z, figures
        largest first)."""
        keys = [self.COLUMNS[i].key for i in self.columns_shown()]
        at = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.sort_key = keys[(at + 1) % len(keys)]
        self.reverse = False
        self.show(self.queues, self.lag_alert)

    def reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self.show(self.queues, self.lag_alert)

    def toggle_empty(self) -> None:
        self.hide_empty = not self.hide_empty
        self.show(self.queues, self.lag_alert)

    def filter_names(self, text: str) -> None:
        self.name_filter = text
        self.show(self.queues, self.lag_alert)

    @property
    def view_state(self) -> str:
        """`sorted by depth ↓ · filter "img"`, or empty in the default view."""
        parts = []
        if (self.sort_key, self.reverse) != ("name", False):
            header = next(c.header for c in self.COLUMNS if c.key == self.sort_key)
            descending = (self.sort_key not in ("name", "kind")) != self.reverse
            parts.append(f"sorted by {header} {'↓' if descending else '↑'}")
        if self.hide_empty:
            parts.append("empty queues hidden")
        if self.name_filter or self.hide_empty:
            what = f'filter "{fmt.printable(self.name_filter)}": ' if self.name_filter else ""
            parts.append(f"{what}{len(self.rows_shown)} of {len(self.queues)} queues")
        return " · ".join(parts)

    def is_alert(self, q: QueueRow) -> bool:
        """Lag past the threshold; not for dead letters, which wait for a person on purpose."""
        return (self.lag_alert > 0 and q.lag_seconds >= self.lag_alert
                and q.kind != "dead_letter")
