"""One queue in detail (Enter on a queue): figures, consumers, and its dead-letter queue."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from tui import fmt
from tui.model import QueueDetail, QueueRow
from tui.source import AdminError, DataSource
from tui.widgets.status import Banner

SETTINGS = (("last_value_key", "key"), ("template", "template"), ("overflow", "when full"),
            ("max_messages", "max"), ("max_inflight", "window"), ("max_deliveries", "tries"))


def describe(q: QueueRow, settings: dict[str, object]) -> str:
    """Three lines: what the queue is, where it stands, and its counters since start-up."""
    extras = [label if settings[k] is True else f"{label} {_setting(k, settings[k])}"
              for k, label in SETTINGS if settings.get(k) not in (None, "", False)]
    what = " · ".join([f"[b]{escape(q.name)}[/b]", fmt.kind(q.kind), q.dispatch or "?",
                       escape(f"filter {q.filter}"), *map(escape, extras)])
    now = (f"depth {fmt.count(q.depth)} ({fmt.size(q.bytes)}) · in flight {q.inflight} · "
           f"lag {fmt.count(q.lag_messages)} msgs, {fmt.seconds(q.lag_seconds)} · "
           f"oldest {fmt.seconds(q.oldest_age)} · in {fmt.rate(q.in_rate)}/s "
           f"out {fmt.rate(q.out_rate)}/s")
    totals = (f"enqueued {q.enqueued} · acked {q.acked} · redelivered {q.redelivered} · "
              f"dropped {q.dropped} · rejected {q.rejected} · replaced {q.replaced} · "
              f"dead-lettered {q.dead_lettered} · expired {q.expired}")
    return "\n".join((what, now, totals))


def _setting(key: str, value: object) -> str:
    return fmt.count(value) if key == "max_messages" and isinstance(value, int) else str(value)


class QueueScreen(Screen[None]):
    """Refreshed by the app after each poll; Escape goes back to the queues."""

    BINDINGS = [Binding("escape", "back", "back"), Binding("p", "purge", "purge"),
                Binding("d", "delete", "delete"), Binding("r", "refresh", "refresh"),
                Binding("question_mark", "app.help", "help"), Binding("q", "app.quit", "quit")]

    def __init__(self, name: str, source: DataSource, purge: Callable[[str], None],
                 delete: Callable[[str], None]) -> None:
        super().__init__()
        self.queue_name = name
        self.source = source
        self._purge = purge
        self._delete = delete
        self._busy = False
        self.detail: QueueDetail | None = None

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield Static(f"[b]{escape(self.queue_name)}[/b] · loading…", id="queue-summary")
        yield Label("Consumers", id="consumers-title", classes="section", markup=False)
        yield DataTable[Text](id="consumers", cursor_type="row", zebra_stripes=True)
        yield Label("Dead-letter queue", id="dlq-title", classes="section", markup=False)
        yield DataTable[Text](id="dead-letters", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        consumers = self.query_one("#consumers", DataTable)
        consumers.add_column("consumer (client id)", key="client_id", width=30)
        for key, label in (("qos", "QoS"), ("inflight", "in flight"), ("acked", "acked")):
            consumers.add_column(Text(label, justify="right"), key=key)
        dlq = self.query_one("#dead-letters", DataTable)
        dlq.add_column("topic", key="topic", width=24)
        dlq.add_column(Text("tries", justify="right"), key="deliveries")
        dlq.add_column(Text("size", justify="right"), key="bytes")
        dlq.add_column("from", key="client_id", width=12)
        dlq.add_column("payload", key="payload")
        self.action_refresh()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_purge(self) -> None:
        self._purge(self.queue_name)

    def action_delete(self) -> None:
        self._delete(self.queue_name)

    def action_refresh(self) -> None:
        if not self._busy:
            self._busy = True
            self._fetch()

    @work(thread=True, exit_on_error=False, group="detail")
    def _fetch(self) -> None:
        try:
            detail: QueueDetail | str = self.source.queue(self.queue_name)
        except AdminError as e:
            detail = str(e)
        except Exception as e:  # a malformed answer must not take the view down
            detail = f"unexpected answer from the gateway: {e!r}"
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self._apply, detail)

    def _apply(self, detail: QueueDetail | str) -> None:
        self._busy = False
        if not self.is_attached:
            return
        if isinstance(detail, str):
            self.query_one("#queue-summary", Static).update(
                f"[b]{escape(self.queue_name)}[/b] · {escape(detail)}")
            return
        self.show(detail)

    def show(self, detail: QueueDetail) -> None:
        self.detail = detail
        self.query_one("#queue-summary", Static).update(describe(detail.stats, detail.settings))
        self._show_consumers(detail)
        self._show_dead_letters(detail)

    def _show_consumers(self, detail: QueueDetail) -> None:
        self.query_one("#consumers-title", Label).update(
            f"Consumers ({len(detail.consumers)})")
        table = self.query_one("#consumers", DataTable)
        table.clear()
        for c in sorted(detail.consumers, key=lambda c: c.client_id):
            label = c.client_id if c.active else f"{c.client_id} (leaving)"
            table.add_row(Text(fmt.clip(label, 30)),
                          Text("" if c.qos is None else str(c.qos), justify="right"),
                          Text(str(c.inflight), justify="right"),
                          Text(str(c.acked), justify="right"))

    def _show_dead_letters(self, detail: QueueDetail) -> None:
        if detail.dead_letter_queue:
            title = (f"Dead-letter queue {detail.dead_letter_queue}: "
                     f"{detail.dead_letter_depth} messages")
        else:
            title = "Dead-letter queue: empty (created on the first dead letter)"
        self.query_one("#dlq-title", Label).update(title)
        table = self.query_one("#dead-letters", DataTable)
        table.clear()
        for m in detail.dead_letters:
            table.add_row(Text(fmt.clip(m.topic, 24)),
                          Text(str(m.deliveries), justify="right"),
                          Text(fmt.size(m.bytes), justify="right"),
                          Text(fmt.clip(m.client_id, 12)),
                          Text(fmt.clip(m.payload.replace("\n", " "), 60)))
