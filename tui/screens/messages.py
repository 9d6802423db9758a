"""A queue's waiting messages, oldest first; for a dead-letter queue (`$dlq/<name>`) the dead
letters with why they died and after how many deliveries, and the actions on them: peek one
(Enter), replay them all into the queues they died in (R), purge (P), both confirmed first.

The list is what `GET /queues/NAME/messages` peeks (consuming nothing), refreshed with the app.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import fmt
from tui.model import DeadLetter, Snapshot
from tui.screens.peek import PeekScreen
from tui.source import AdminError, DataSource
from tui.widgets.compact import Col, CompactTable, Row
from tui.widgets.status import Banner, StorageLine

LIMIT = 200  # messages listed; the queue's depth says how many there are in all


class MessagesTable(CompactTable):
    COLUMNS = (Col("n", "#", 3, right=True), Col("topic", "topic", least=16, most=48),
               Col("reason", "reason", 16), Col("tries", "tries", 5, right=True),
               Col("age", "age", 5, right=True), Col("bytes", "size", 5, right=True),
               Col("client_id", "from", 10, drop=2),
               Col("payload", "payload (start)", 18, drop=1))


def cells(n: int, m: DeadLetter, now: float) -> tuple[str, ...]:
    age = fmt.seconds(now - m.created) if m.created else ""
    return (str(n), m.topic, m.reason, str(m.tries), age, fmt.size(m.bytes), m.client_id,
            m.payload)


class MessagesScreen(Screen[None]):
    """Escape goes back; the app refreshes it after each poll."""

    BINDINGS = [Binding("escape", "back", "back"), Binding("enter", "peek", "peek"),
                Binding("R", "replay", "replay all"), Binding("P", "purge", "purge"),
                Binding("r", "refresh", "refresh", show=False),
                Binding("question_mark", "app.help", "help"), Binding("q", "app.quit", "quit")]

    def __init__(self, name: str, source: DataSource, replay: Callable[[str], None],
                 purge: Callable[[str], None],
                 replay_one: Callable[[str, int, DeadLetter], None]) -> None:
        super().__init__()
        self.queue_name = name
        self.dead = name.startswith("$dlq/")
        self.source = source
        self._replay = replay
        self._purge = purge
        self._replay_one = replay_one
        self._busy = False
        self.messages: list[DeadLetter] = []

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield StorageLine(id="storage")
        yield Static(self._title("loading…"), id="messages-summary", markup=False)
        yield MessagesTable(id="messages")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(MessagesTable).focus()
        self.action_refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Replay is for dead letters only."""
        return self.dead or action != "replay"

    def _title(self, state: str) -> str:
        what = "Dead letters of" if self.dead else "Waiting messages of"
        source = self.queue_name.removeprefix("$dlq/") if self.dead else self.queue_name
        name = f"{fmt.printable(source)} ({fmt.printable(self.queue_name)})" if self.dead \
            else fmt.printable(source)
        return f"{what} {name}: {state}"

    def action_back(self) -> None:
        self.dismiss(None)

    def action_refresh(self) -> None:
        if not self._busy:
            self._busy = True
            self._fetch()

    @work(thread=True, exit_on_error=False, group="messages")
    def _fetch(self) -> None:
        try:
            found: list[DeadLetter] | str = self.source.messages(self.queue_name, LIMIT)
        except AdminError as e:
            found = str(e)
        except Exception as e:  # a malformed answer must not take the view down
            found = f"unexpected answer from the gateway: {e!r}"
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self._apply, found)

    def _apply(self, found: list[DeadLetter] | str) -> None:
        self._busy = False
        if not self.is_attached:
            return
        summary = self.query_one("#messages-summary", Static)
        if isinstance(found, str):
            summary.update(self._title(found))
            return
        self.messages = found
        summary.update(self._title(self._state()))
        now = time.time()
        self.query_one(MessagesTable).set_rows(
            [Row(f"{i}:{m.created}:{m.topic}", cells(i + 1, m, now))
             for i, m in enumerate(found)])

    def _state(self) -> str:
        snapshot = getattr(self.app, "snapshot", None)
        row = snapshot.queue(self.queue_name) if isinstance(snapshot, Snapshot) else None
        depth = row.depth if row is not None else len(self.messages)
        shown = f" (the oldest {len(self.messages)} listed)" if depth > len(self.messages) \
            else ""
        if not depth:
            return "none"
        return f"{depth} messages{shown} · Enter: peek"

    def on_data_table_row_selected(self, event: MessagesTable.RowSelected) -> None:
        event.stop()
        self.action_peek()

    def action_peek(self) -> None:
        table = self.query_one(MessagesTable)
        if 0 <= table.cursor_row < len(self.messages):
            index = table.cursor_row
            one = (lambda i, m: self._replay_one(self.queue_name, i, m)) if self.dead else None
            self.app.push_screen(PeekScreen(self.queue_name, index, self.messages[index],
                                            self.source, one))

    def action_replay(self) -> None:
        self._replay(self.queue_name)

    def action_purge(self) -> None:
        self._purge(self.queue_name)
