"""Sparklines of the selected queue's depth and lag over the last couple of minutes."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from tui import fmt
from tui.history import SAMPLES
from tui.model import QueueRow


def _series(values: Sequence[float]) -> list[float]:
    """Pad to the full window (time runs left to right, now at the right edge) and anchor the
    scale at zero: Textual's sparkline scales from the smallest value, which would draw a
    steady depth of 5,000 as an empty line."""
    padding = [0.0] * max(SAMPLES - len(values), 0)
    return [0.0, *padding, *values]


class Trend(Horizontal):
    """Two labelled sparklines side by side."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="series"):
            yield Label("depth", id="depth-label", classes="series-label", markup=False)
            yield Sparkline([], id="depth-spark")
        with Vertical(classes="series"):
            yield Label("lag", id="lag-label", classes="series-label", markup=False)
            yield Sparkline([], id="lag-spark")

    def show(self, queue: QueueRow | None, depth: Sequence[float], lag: Sequence[float],
             alert: bool) -> None:
        depth_label = self.query_one("#depth-label", Label)
        lag_label = self.query_one("#lag-label", Label)
        if queue is None:
            depth_label.update("depth: no queue selected")
            lag_label.update("lag")
            depth, lag = (), ()
        else:
            peak = max(depth, default=0)
            depth_label.update(f"depth {fmt.printable(queue.name)}: {fmt.count(queue.depth)} "
                               f"(peak {fmt.count(int(peak))}, {fmt.size(queue.bytes)})")
            lag_label.update(f"lag: {fmt.seconds(queue.lag_seconds)}, "
                             f"{fmt.count(queue.lag_messages)} msgs behind")
        self.query_one("#depth-spark", Sparkline).data = _series(depth)
        self.query_one("#lag-spark", Sparkline).data = _series(lag)
        self.set_class(alert, "-alert")
