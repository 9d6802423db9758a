"""The live table of queues: one row per queue, updated in place so the cursor stays put."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from tui import fmt
from tui.model import QueueRow

Column = tuple[str, str, Callable[[QueueRow], str]]

# key, header, cell text. Headers are short so that all eleven fit in 80 columns: the table has
# no cell padding, each column is one cell wider than its text instead (one space per column
# rather than Textual's two).
COLUMNS: tuple[Column, ...] = (
    ("name", "queue", lambda q: q.name),
    ("kind", "type", lambda q: fmt.kind(q.kind)),
    ("depth", "depth", lambda q: fmt.count(q.depth)),
    ("bytes", "bytes", lambda q: fmt.size(q.bytes)),
    ("consumers", "cons", lambda q: str(q.consumers)),
    ("inflight", "infl", lambda q: fmt.count(q.inflight)),
    ("in_rate", "in/s", lambda q: fmt.rate(q.in_rate)),
    ("out_rate", "out/s", lambda q: fmt.rate(q.out_rate)),
    ("lag_messages", "lag", lambda q: fmt.count(q.lag_messages)),
    ("lag_seconds", "lag s", lambda q: fmt.seconds(q.lag_seconds)),
    ("oldest_age", "oldest", lambda q: fmt.seconds(q.oldest_age)),
)
FIXED_WIDTHS = {"kind": 5, "depth": 6, "bytes": 6, "consumers": 5, "inflight": 5, "in_rate": 6,
                "out_rate": 6, "lag_messages": 6, "lag_seconds": 6, "oldest_age": 7}
NAME_MIN, NAME_MAX = 10, 48


class QueuesTable(DataTable[Text]):
    """Queues by name; rows whose lag passes the alert threshold use the `--alert` style."""

    COMPONENT_CLASSES: ClassVar[set[str]] = DataTable.COMPONENT_CLASSES | {
        "queues-table--alert"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=0)
        self.rows_shown: tuple[QueueRow, ...] = ()
        self.lag_alert = 0.0
        self.labels: dict[str, str] = {}  # queue name -> what the name column shows

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self) -> None:
        if self.rows_shown and self._name_width() != self.columns[ColumnKey("name")].width:
            self.show(self.rows_shown, self.lag_alert, force=True)

    @property
    def selected(self) -> str | None:
        """The queue under the cursor, if any."""
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row].name

    def show(self, queues: Sequence[QueueRow], lag_alert: float, force: bool = False) -> None:
        """Display `queues`; rows are rebuilt only when the set of queues changes."""
        rows = tuple(sorted(queues, key=lambda q: q.name))
        self.lag_alert = lag_alert
        same_rows = [q.name for q in rows] == [q.name for q in self.rows_shown]
        self.rows_shown = rows
        self.labels = fmt.queue_labels(rows)
        if same_rows and not force:
            for q in rows:
                for key, _, cell in COLUMNS:
                    self.update_cell(q.name, key, self._cell(q, key, cell))
            return
        keep = self.selected
        self.clear(columns=True)
        self._add_columns()
        for q in rows:
            self.add_row(*(self._cell(q, key, cell) for key, _, cell in COLUMNS), key=q.name)
        names = [q.name for q in rows]
        if keep in names:
            self.move_cursor(row=names.index(keep), animate=False)

    def _add_columns(self) -> None:
        for key, header, _ in COLUMNS:
            width = self._name_width() if key == "name" else FIXED_WIDTHS[key]
            label = f" {header}" if _justify(key) == "left" else header
            self.add_column(Text(label, justify=_justify(key)), key=key, width=width)

    def _name_width(self) -> int:
        spare = self.size.width - sum(FIXED_WIDTHS.values()) - 1  # the vertical scrollbar
        return max(NAME_MIN, min(NAME_MAX, spare))

    def _cell(self, q: QueueRow, key: str, render: Callable[[QueueRow], str]) -> Text:
        alert = self.is_alert(q)
        text = render(q)
        if key == "name":
            text = fmt.clip(("! " if alert else "") + self.labels.get(q.name, text),
                            self._name_width() - 1)
        if _justify(key) == "left":
            text = f" {text}"
        style = self.get_component_rich_style("queues-table--alert") if alert else ""
        return Text(text, style=style, justify=_justify(key))

    def is_alert(self, q: QueueRow) -> bool:
        return self.lag_alert > 0 and q.lag_seconds >= self.lag_alert


def _justify(key: str) -> Literal["left", "right"]:
    return "left" if key in ("name", "kind") else "right"
