"""A DataTable that fits 80 columns: one space between columns instead of Textual's two, one
flexible column that takes the width left over (and clips its text with an ellipsis), and
columns that a narrow terminal leaves out so the flexible one keeps at least `least` cells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from tui import fmt

SCROLLBAR = 1  # app.tcss sets scrollbar-size-vertical: 1


@dataclass(frozen=True, slots=True)
class Col:
    """A column: `width` cells of text (0: the flexible one, between `least` and `most`);
    `drop` > 0: left out when the terminal is too narrow, the highest `drop` first."""

    key: str
    header: str
    width: int = 0
    right: bool = False
    least: int = 8
    most: int = 40
    drop: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    cells: Sequence[str]
    style: Style | str = ""


class CompactTable(DataTable[Text]):
    """Rows are replaced in place while the keys stay the same, so the cursor keeps its row."""

    COLUMNS: ClassVar[tuple[Col, ...]] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=0)
        self._rows: list[Row] = []
        self._flex = 0
        self._shown: tuple[int, ...] = ()  # indexes in COLUMNS of the columns on screen

    def on_mount(self) -> None:
        self._rebuild(None)

    def on_resize(self) -> None:
        if (self._flex, self._shown) != (self.flex_width(), self.columns_shown()):
            self._rebuild(self.cursor_key)

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if 0 <= self.cursor_row < len(self._rows):
            return self._rows[self.cursor_row].key
        return None

    def columns_shown(self) -> tuple[int, ...]:
        """The columns that fit: optional ones are left out, the highest `drop` first, until
        the flexible column has its `least` width."""
        shown = list(range(len(self.COLUMNS)))
        flexible = next((c for c in self.COLUMNS if not c.width), None)
        while flexible is not None and self._spare(shown) < flexible.least:
            droppable = [i for i in shown if self.COLUMNS[i].drop]
            if not droppable:
                break
            shown.remove(max(droppable, key=lambda i: self.COLUMNS[i].drop))
        return tuple(shown)

    def _spare(self, shown: Sequence[int]) -> int:
        fixed = sum(self.COLUMNS[i].width + 1 for i in shown if self.COLUMNS[i].width)
        return self.size.width - fixed - 1 - SCROLLBAR

    def flex_width(self) -> int:
        """The flexible column's width of text for the current widget width."""
        flexible = next((c for c in self.COLUMNS if not c.width), None)
        if flexible is None:
            return 0
        spare = self._spare(self.columns_shown())
        return max(flexible.least, min(flexible.most, spare))

    def set_rows(self, rows: Sequence[Row]) -> None:
        same_keys = [r.key for r in rows] == [r.key for r in self._rows]
        keep = self.cursor_key
        before, self._rows = self._rows, list(rows)
        if not same_keys or (self._flex, self._shown) != (self.flex_width(),
                                                          self.columns_shown()):
            self._rebuild(keep)
            return
        for old, row in zip(before, rows, strict=True):
            for i in self._shown:  # only what changed: cheap on a Pi
                col = self.COLUMNS[i]
                if row.cells[i] != old.cells[i] or row.style != old.style:
                    self.update_cell(row.key, col.key, self._text(col, row.cells[i], row.style))

    def _rebuild(self, keep: str | None) -> None:
        """Columns and rows from scratch; the cursor goes back to row `keep` if it is there."""
        row_index = self.cursor_row
        self._flex = self.flex_width()
        self._shown = self.columns_shown()
        self.clear(columns=True)
        for i in self._shown:
            col = self.COLUMNS[i]
            width = (col.width or self._flex) + 1
            self.add_column(self._text(col, col.header, ""), key=col.key, width=width)
        for row in self._rows:
            self.add_row(*(self._text(self.COLUMNS[i], row.cells[i], row.style)
                           for i in self._shown), key=row.key)
        keys = [r.key for r in self._rows]
        if keep in keys:
            row_index = keys.index(keep)
        if self._rows:
            self.move_cursor(row=max(0, min(row_index, len(keys) - 1)), animate=False)

    def _text(self, col: Col, value: str, style: Style | str) -> Text:
        value = fmt.clip(fmt.printable(value), col.width or self._flex)
        if col.right:
            return Text(value, style=style, justify="right")
        return Text(f" {value}", style=style)
