"""One queue in detail (Enter on a queue): figures, consumers, and its dead-letter queue."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from tui import fmt
from tui.model import QueueDetail, QueueRow
from tui.source import AdminError, DataSource
from tui.widgets.compact import Col, CompactTable, Row
from tui.widgets.status import Banner, StorageLine

COUNTERS = ("enqueued", "acked", "redelivered", "dropped", "rejected", "replaced",
            "dead_lettered", "expired", "nacked", "blocked", "key_errors", "oversize")
RATE_WINDOW = 10.0  # seconds of refreshes a consumer's acked/s is the mean over
SETTINGS = (("last_value_key", "key"), ("template", "template"), ("overflow", "when full"),
            ("max_messages", "max"), ("max_inflight", "window"), ("max_deliveries", "tries"))


def _safe(text: str) -> str:
    """Client-chosen text for a Static with markup: control characters and markup escaped."""
    return escape(fmt.printable(text))


def describe(q: QueueRow, settings: dict[str, object]) -> str:
    """What the queue is, its settings, where it stands, and its non-zero counters."""
    what = " · ".join([f"[b]{_safe(q.name)}[/b]", fmt.kind(q.kind), q.dispatch or "?",
                       _safe(f"filter {q.filter}")])
    configured = " · ".join(
        _safe(label if settings[k] is True else f"{label} {_setting(k, settings[k])}")
        for k, label in SETTINGS if settings.get(k) not in (None, "", False))
    now = (f"depth {fmt.count(q.depth)} ({fmt.size(q.bytes)}){_fill(q)} · in flight "
           f"{q.inflight} · in {fmt.rate(q.in_rate)}/s · out {fmt.rate(q.out_rate)}/s")
    lag = (f"lag {fmt.count(q.lag_messages)} msgs behind · oldest unacked "
           f"{fmt.seconds(q.lag_seconds)} · oldest waiting {fmt.seconds(q.oldest_age)}")
    counters = [(n, getattr(q, n)) for n in COUNTERS]
    totals = "since start: " + " · ".join(
        f"{n.replace('_', '-')} {v}" for n, v in counters if v or n in ("enqueued", "acked"))
    return "\n".join(line for line in (what, configured, now, lag, totals) if line)


def _fill(q: QueueRow) -> str:
    """` = 57% full`: the fill of the tighter of the two limits."""
    if q.fill is None:
        return ""
    return f" = {int(q.fill * 100)}% full"


class ConsumersTable(CompactTable):
    COLUMNS = (Col("client_id", "consumer (client id)", least=16, most=40),
               Col("qos", "QoS", 3, right=True), Col("inflight", "in flight", 9, right=True),
               Col("acked", "acked", 9, right=True), Col("rate", "acked/s", 7, right=True))


class DeadLettersTable(CompactTable):
    COLUMNS = (Col("topic", "topic", 24), Col("reason", "reason", 16, drop=1),
               Col("deliveries", "tries", 5, right=True), Col("bytes", "size", 5, right=True),
               Col("client_id", "from", 12, drop=2),
               Col("payload", "payload (start)", least=10, most=80))


def _setting(key: str, value: object) -> str:
    return fmt.count(value) if key == "max_messages" and isinstance(value, int) else str(value)


class QueueScreen(Screen[None]):
    """Refreshed by the app after each poll; Escape goes back to the queues."""

    BINDINGS = [Binding("escape", "back", "back"), Binding("m", "messages", "messages"),
                Binding("x", "dead_letters", "dead letters"), Binding("p", "purge", "purge"),
                Binding("d", "delete", "delete"), Binding("r", "refresh", "refresh", show=False),
                Binding("question_mark", "app.help", "help"), Binding("q", "app.quit", "quit")]

    def __init__(self, name: str, source: DataSource, purge: Callable[[str], None],
                 delete: Callable[[str], None], messages: Callable[[str], None],
                 sampled: Callable[[QueueRow], QueueRow] | None = None) -> None:
        """`sampled` gives a queue's figures the rates the main table shows."""
        super().__init__()
        self._sampled = sampled
        self.queue_name = name
        self.source = source
        self._purge = purge
        self._delete = delete
        self._messages = messages
        self._busy = False
        self.detail: QueueDetail | None = None
        self._acked: dict[str, deque[tuple[float, int]]] = {}  # per consumer: (when, acked)

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield StorageLine(id="storage")
        yield Static(f"[b]{_safe(self.queue_name)}[/b] · loading…", id="queue-summary")
        yield Label("Consumers", id="consumers-title", classes="section", markup=False)
        yield ConsumersTable(id="consumers")
        yield Label("Dead-letter queue", id="dlq-title", classes="section", markup=False)
        yield DeadLettersTable(id="dead-letters")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.action_refresh()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_purge(self) -> None:
        self._purge(self.queue_name)

    def action_messages(self) -> None:
        self._messages(self.queue_name)

    def action_dead_letters(self) -> None:
        """The dead-letter queue's messages (it exists once a message has died)."""
        if self.detail is not None and self.detail.dead_letter_queue:
            self._messages(self.detail.dead_letter_queue)
        else:
            self.notify("no dead letters yet (the dead-letter queue appears with the first)",
                        markup=False)

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
                f"[b]{_safe(self.queue_name)}[/b] · {_safe(detail)}")
            return
        self.show(detail)

    def show(self, detail: QueueDetail) -> None:
        self.detail = detail
        stats = self._sampled(detail.stats) if self._sampled else detail.stats
        self.query_one("#queue-summary", Static).update(describe(stats, detail.settings))
        self._show_consumers(detail)
        self._show_dead_letters(detail)

    def _show_consumers(self, detail: QueueDetail) -> None:
        now = time.monotonic()
        rates = {c.client_id: self._rate(c.client_id, c.acked, now) for c in detail.consumers}
        self._acked = {c.client_id: self._acked[c.client_id] for c in detail.consumers}
        self.query_one("#consumers-title", Label).update(
            f"Consumers ({len(detail.consumers)}) · acked/s: mean over the last "
            f"{fmt.seconds(RATE_WINDOW)} (… until two refreshes)")
        self.query_one(ConsumersTable).set_rows([
            Row(str(i), (c.client_id if c.active else f"{c.client_id} (leaving)",
                         "" if c.qos is None else str(c.qos), str(c.inflight), str(c.acked),
                         rates[c.client_id]))
            for i, c in enumerate(sorted(detail.consumers, key=lambda c: c.client_id))])

    def _rate(self, client_id: str, acked: int, now: float) -> str:
        """Messages the consumer acknowledged per second since the oldest refresh of the
        last `RATE_WINDOW` seconds: a true mean, counted from its total."""
        seen = self._acked.setdefault(client_id, deque())
        if seen and acked < seen[-1][1]:  # another consumer by the same client id
            seen.clear()
        seen.append((now, acked))
        while len(seen) > 2 and now - seen[1][0] >= RATE_WINDOW:
            seen.popleft()
        then, before = seen[0]
        return fmt.rate((acked - before) / (now - then)) if now > then else "…"

    def _show_dead_letters(self, detail: QueueDetail) -> None:
        if detail.dead_letter_queue:
            title = (f"Dead-letter queue {fmt.printable(detail.dead_letter_queue)}: "
                     f"{detail.dead_letter_depth} messages (x: all, peek, replay)")
        else:
            title = "Dead-letter queue: empty (created on the first dead letter)"
        self.query_one("#dlq-title", Label).update(title)
        self.query_one(DeadLettersTable).set_rows([
            Row(str(i), (m.topic, m.reason, str(m.tries), fmt.size(m.bytes), m.client_id,
                         m.payload))
            for i, m in enumerate(detail.dead_letters)])
