"""Sparklines of the selected queue's depth, rates and lag over the gateway's history window.

Time runs left to right with now at the right edge, and the whole width is the gateway's
window (15 minutes by default): a queue sampled for five minutes fills the right third and the
rest stays blank, never drawn as zeros. Bars grow from zero, so a steady depth of 5,000 is a
full line, not an empty one.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label

from tui import fmt
from tui.history import Trend as Series
from tui.model import QueueRow

BARS = " ▁▂▃▄▅▆▇█"


class Spark(Widget):
    """Bars of `values` (the newest last) in a window of `slots` samples, bottom at zero."""

    DEFAULT_CSS = "Spark { height: 2; }"

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.values: Sequence[float] = ()
        self.slots = 1

    def plot(self, values: Sequence[float], slots: int) -> None:
        self.values, self.slots = values, max(slots, len(values), 1)
        self.refresh()

    def render(self) -> RenderResult:
        return Text("\n".join(bars(self.values, self.slots, self.size.width, self.size.height)))


def bars(values: Sequence[float], slots: int, width: int, height: int) -> list[str]:
    """The rows, top first, of a bar chart `width` cells wide: each cell covers `slots / width`
    samples and shows the largest; cells before the first sample are blank and a sample of
    zero is a low bar, so no data and a zero look different."""
    if width <= 0 or height <= 0:
        return []
    top = max(values, default=0.0) or 1.0
    offset = slots - len(values)
    levels = 8 * height
    columns: list[int | None] = []
    for cell in range(width):
        first = cell * slots // width
        last = max((cell + 1) * slots // width, first + 1)
        shown = values[max(first - offset, 0):max(last - offset, 0)]
        columns.append(None if not shown else max(1, round(max(shown) / top * levels)))
    rows = []
    for row in reversed(range(height)):
        rows.append("".join(" " if level is None else BARS[min(max(level - 8 * row, 0), 8)]
                            for level in columns))
    return rows


class Trend(Horizontal):
    """Three labelled sparklines side by side: depth, messages in and out, lag."""

    def compose(self) -> ComposeResult:
        for series in ("depth", "rate", "lag"):
            with Vertical(classes="series"):
                yield Label(series, id=f"{series}-label", classes="series-label", markup=False)
                yield Spark(id=f"{series}-spark")

    def show(self, queue: QueueRow | None, trend: Series | None, interval: float,
             slots: int, alert: bool) -> None:
        """`trend` is the queue's sampled history (None: the gateway has none for it), taken
        every `interval` seconds into a window of `slots` samples."""
        depth = self.query_one("#depth-label", Label)
        rate = self.query_one("#rate-label", Label)
        lag = self.query_one("#lag-label", Label)
        series = trend or Series(0, (), (), (), (), ())
        if queue is None:
            self.border_title = "no queue selected"
            depth.update("depth")
            rate.update("in/s")
            lag.update("lag")
        else:
            if trend:
                span = (f"last {fmt.seconds(len(series) * interval)} at "
                        f"{fmt.seconds(interval)} · rates: means over {fmt.seconds(interval)}")
            else:
                span = "no history from the gateway · rates: 10 s moving averages"
            self.border_title = f"{fmt.printable(queue.name)} · {span}"
            peak = max(max(series.depth, default=0), queue.depth)
            depth.update(f"depth {fmt.count(queue.depth)} (peak {fmt.count(int(peak))})")
            rate.update(f"in {fmt.rate(queue.in_rate)}/s · out {fmt.rate(queue.out_rate)}/s")
            lag.update(f"lag {fmt.seconds(queue.lag_seconds)} · "
                       f"{fmt.count(queue.lag_messages)} behind")
        self.query_one("#depth-spark", Spark).plot(series.depth, slots)
        self.query_one("#rate-spark", Spark).plot(series.in_rate, slots)
        self.query_one("#lag-spark", Spark).plot(series.lag_seconds, slots)
        self.set_class(alert, "-alert")
