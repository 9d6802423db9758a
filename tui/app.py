"""`edgeq top`: the live queues table, the selected queue's trend, and the actions on queues.

Once a second a worker thread fetches a `Snapshot` from the data source (the admin API); the
result comes back to the event loop, which updates the table, the history behind the
sparklines, and whatever screen is on top. A failed fetch shows the connection-lost banner and
keeps the last figures on screen; the next tick tries again. Nothing here blocks the event loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.events import Key
from textual.widgets import DataTable, Footer, Input, Label

from gateway.admin.client import AdminClient
from tui import fmt
from tui.history import History
from tui.model import DeadLetter, QueueRow, Snapshot
from tui.screens.clients import ClientsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.create import CreateQueueScreen
from tui.screens.detail import QueueScreen
from tui.screens.help import HelpScreen
from tui.screens.messages import MessagesScreen
from tui.screens.peek import PeekScreen
from tui.source import AdminError, AdminSource, DataSource
from tui.widgets.queues_table import QueuesTable
from tui.widgets.status import Banner, StatusLine, StorageLine
from tui.widgets.trend import Trend

DEFAULT_LAG_ALERT = 30.0
POLL_SECONDS = 1.0
MAIN_VIEW_ACTIONS = {"open", "clients", "create", "purge", "delete", "filter", "sort",
                     "reverse", "hide_empty"}
REQUEST_TIMEOUT = 2.0  # shorter than the admin client's default: a hung gateway shows up fast
REFUSALS_BEFORE_EXIT = 5  # a restarting gateway may answer before it rewrote admin.json


class TopApp(App[int]):
    """The app; `source` is the gateway, `interval` 0 turns the timer off (tests poll by hand)."""

    CSS_PATH = "app.tcss"
    TITLE = "edgeq top"
    BINDINGS = [
        Binding("slash", "filter", "filter"),
        Binding("s", "sort", "sort"),
        Binding("S", "reverse", "reverse", show=False),
        Binding("e", "hide_empty", "hide empty", show=False),
        Binding("c", "clients", "clients"),
        Binding("n", "create", "new"),
        Binding("p", "purge", "purge"),
        Binding("d,delete", "delete", "delete"),
        Binding("r", "refresh", "refresh", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source: DataSource, lag_alert: float = DEFAULT_LAG_ALERT,
                 interval: float = POLL_SECONDS) -> None:
        super().__init__()
        self.source = source
        self.lag_alert = lag_alert
        self.interval = interval
        self.history = History()
        self.snapshot: Snapshot | None = None
        self.lost: str | None = None  # why the last fetch failed; None while connected
        self.failures = 0
        self.refusals = 0  # consecutive fetches refused with 401
        self.refused: str | None = None  # why the app stopped: credentials no longer accepted
        self._polling = False

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield StorageLine(id="storage")
        yield Banner(id="banner")
        yield Label("", id="view-state", markup=False)
        yield QueuesTable(id="queues")
        yield Input(placeholder="filter queues by name (Enter: keep · Esc: clear)",
                    id="name-filter", compact=True)
        yield Trend(id="trend")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(StatusLine).show(self.source.where, None, 0)
        self.query_one(QueuesTable).focus()
        self.poll()
        if self.interval > 0:
            self.set_interval(self.interval, self.poll)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The queue actions belong to the main view, not to the screens pushed over it."""
        if action in MAIN_VIEW_ACTIONS:
            return self.screen is self.screen_stack[0]
        return True

    # -- fetching -------------------------------------------------------------------------

    def poll(self) -> None:
        """Start one fetch unless one is still under way (a slow gateway must not pile up
        threads)."""
        if not self._polling:
            self._polling = True
            self._fetch()

    @work(thread=True, exit_on_error=False, group="poll")
    def _fetch(self) -> None:
        try:
            result: Snapshot | AdminError | str = self.source.fetch(self.history.taken)
        except AdminError as e:
            result = e
        except Exception as e:  # a malformed answer must not take the view down
            result = f"unexpected answer from the gateway: {e!r}"
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.call_from_thread(self.apply, result)

    def apply(self, result: Snapshot | AdminError | str) -> None:
        """Show a fetched snapshot, or the reason the fetch failed. Credentials refused
        again and again (a gateway restarted with another token that `admin.json` does not
        give us) stop the app with the reason: retrying would never help."""
        self._polling = False
        self.refusals = self.refusals + 1 if isinstance(result, AdminError) and \
            result.status == 401 else 0
        if self.refusals >= REFUSALS_BEFORE_EXIT:
            self.refused = str(result)
            self.exit(return_code=1)
            return
        if notice := self.source.notice():
            self.notify(notice, title="reconnected", markup=False)
        if isinstance(result, AdminError | str):
            self.failures += 1
            self.lost = str(result)
        else:
            self.failures = 0
            self.lost = None
            self.history.merge(result.history)
            self.snapshot = result = dataclasses.replace(
                result, queues=tuple(self.with_sampled_rates(q) for q in result.queues))
            self.query_one(QueuesTable).show(result.queues, self.lag_alert)
            for screen in self.screen_stack:
                for line in screen.query(StorageLine):
                    line.show(result.storage)
            self._update_trend()
        self._show_connection()
        self.query_one(StatusLine).show(self.source.where, self.snapshot, self._alerts())
        self._refresh_screen()

    def with_sampled_rates(self, row: QueueRow) -> QueueRow:
        """`row` with in/s and out/s of the gateway's newest history sample: true averages
        over its sampling interval (the gateway's own figures are 10 s moving averages, used
        for a queue without history)."""
        rates = self.history.rates(row.name)
        if rates is None:
            return row
        return dataclasses.replace(row, in_rate=rates[0], out_rate=rates[1])

    def _show_connection(self) -> None:
        for screen in self.screen_stack:
            for banner in screen.query(Banner):
                if self.lost is not None:
                    banner.show_lost(self.lost, self.failures)
                banner.set_class(self.lost is not None, "-lost")
        self.query_one(QueuesTable).set_class(self.lost is not None, "-stale")

    def _refresh_screen(self) -> None:
        screen = self.screen
        if isinstance(screen, ClientsScreen) and self.snapshot is not None and not self.lost:
            screen.show(self.snapshot)
        elif isinstance(screen, QueueScreen | MessagesScreen) and not self.lost:
            screen.action_refresh()

    def _alerts(self) -> int:
        table = self.query_one(QueuesTable)
        return sum(1 for q in self.snapshot.queues if table.is_alert(q)) if self.snapshot else 0

    def _update_trend(self) -> None:
        table = self.query_one(QueuesTable)
        name = table.selected
        row = self.snapshot.queue(name) if self.snapshot and name else None
        alert = row is not None and table.is_alert(row)
        self.query_one(Trend).show(row, self.history.trend(name or ""), self.history.interval,
                                   self.history.samples, alert)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "queues":
            self._update_trend()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "queues":
            self.action_open()

    # -- actions --------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.poll()

    def action_filter(self) -> None:
        """`/`: type part of a name; the table narrows as you type."""
        field = self.query_one("#name-filter", Input)
        field.add_class("-open")
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "name-filter":
            self.query_one(QueuesTable).filter_names(event.value)
            self._show_view_state()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "name-filter":
            self._close_filter(keep=True)

    def on_key(self, event: Key) -> None:
        if event.key == "escape" and self.focused is self.query_one("#name-filter", Input):
            event.stop()
            self._close_filter(keep=False)

    def _close_filter(self, keep: bool) -> None:
        field = self.query_one("#name-filter", Input)
        if not keep:
            field.value = ""
            self.query_one(QueuesTable).filter_names("")
        field.set_class(bool(field.value), "-open")
        self.query_one(QueuesTable).focus()
        self._show_view_state()

    def action_sort(self) -> None:
        self.query_one(QueuesTable).sort_by_next_column()
        self._show_view_state()

    def action_hide_empty(self) -> None:
        self.query_one(QueuesTable).toggle_empty()
        self._show_view_state()

    def action_reverse(self) -> None:
        self.query_one(QueuesTable).reverse_sort()
        self._show_view_state()

    def _show_view_state(self) -> None:
        state = self.query_one(QueuesTable).view_state
        label = self.query_one("#view-state", Label)
        label.update(state)
        label.set_class(bool(state), "-shown")
        self._update_trend()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(fmt.seconds(self.lag_alert)))

    def action_open(self) -> None:
        """Enter: a queue's details, or a dead-letter queue's dead letters."""
        name = self.query_one(QueuesTable).selected
        row = self.snapshot.queue(name) if self.snapshot and name else None
        if row is not None and row.kind == "dead_letter":
            self.open_messages(row.name)
        elif name is not None:
            self.push_screen(QueueScreen(name, self.source, self.confirm_purge,
                                         self.confirm_delete, self.open_messages,
                                         self.with_sampled_rates))

    def open_messages(self, name: str) -> None:
        self.push_screen(MessagesScreen(name, self.source, self.confirm_replay,
                                        self.confirm_purge, self.confirm_replay_one))

    def action_clients(self) -> None:
        self.push_screen(ClientsScreen(self.snapshot))

    def action_create(self) -> None:
        def created(name: str | None) -> None:
            if name:
                self.notify(f"created queue {fmt.printable(name)}", markup=False)
                self.poll()

        self.push_screen(CreateQueueScreen(self.source.create), created)

    def action_purge(self) -> None:
        name = self.query_one(QueuesTable).selected
        if name is not None:
            self.confirm_purge(name)

    def action_delete(self) -> None:
        name = self.query_one(QueuesTable).selected
        if name is not None:
            self.confirm_delete(name)

    def confirm_purge(self, name: str) -> None:
        row = self.snapshot.queue(name) if self.snapshot else None
        waiting = f"its {row.depth - row.inflight} waiting messages" if row else "its messages"
        shown = fmt.printable(name)
        self._confirm(f"Purge queue {shown}?",
                      f"This drops {waiting} for good. Messages in flight to consumers "
                      "are not recalled. The queue itself stays.",
                      "Purge", lambda: self._act(lambda: self.source.purge(name),
                                                 lambda n: f"purged {n} messages from {shown}"))

    def confirm_replay(self, name: str) -> None:
        row = self.snapshot.queue(name) if self.snapshot else None
        count = f"the {row.depth} dead letters" if row else "the dead letters"
        shown = fmt.printable(name)
        self._confirm(f"Replay {count} of {shown}?",
                      "Each goes back into the queue it died in, as a new message with its "
                      "x-death marks removed and its delivery count reset. Dead letters whose "
                      "queue is full or gone stay here.",
                      "Replay", lambda: self._act(lambda: self.source.replay(name),
                                                  lambda n: f"replayed {n} dead letters of "
                                                            f"{shown}"))

    def confirm_replay_one(self, name: str, index: int, message: DeadLetter) -> None:
        def replayed(moved: int) -> str:
            if isinstance(self.screen, PeekScreen):
                self.pop_screen()
            if not moved:
                return "not replayed: its queue is full or gone, or it was replayed already"
            return f"replayed {fmt.printable(message.topic)} into {fmt.printable(message.source)}"

        self._confirm(f"Replay this dead letter of {fmt.printable(name)}?",
                      f"{fmt.printable(message.topic)} ({message.bytes} bytes) goes back into "
                      f"{fmt.printable(message.source) or 'its queue'} as a new message, its "
                      "x-death marks removed and its delivery count reset.",
                      "Replay", lambda: self._act(lambda: self.source.replay(name, index),
                                                  replayed))

    def confirm_delete(self, name: str) -> None:
        def deleted(_: object) -> str:
            if isinstance(self.screen, QueueScreen) and self.screen.queue_name == name:
                self.pop_screen()
            return f"deleted queue {fmt.printable(name)}"

        self._confirm(f"Delete queue {fmt.printable(name)}?",
                      "The queue and every message in it are removed (a template: with all its "
                      "per-topic queues). Queues declared in the config file are deleted "
                      "there, not here.",
                      "Delete", lambda: self._act(lambda: self.source.delete(name), deleted))

    def _confirm(self, title: str, body: str, verb: str, then: Callable[[], object]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmScreen(title, body, verb), answered)

    @work(thread=True, exit_on_error=False, group="action")
    def _act(self, call: Callable[[], Any], done: Callable[[Any], str]) -> None:
        try:
            result = call()
        except AdminError as e:
            self.call_from_thread(self.notify, str(e), title="refused", severity="error",
                                  markup=False)
            return
        except Exception as e:
            self.call_from_thread(self.notify, repr(e), title="failed", severity="error",
                                  markup=False)
            return
        self.call_from_thread(lambda: self.notify(done(result), markup=False))
        self.call_from_thread(self.poll)


def run_top(client: AdminClient, lag_alert: float = DEFAULT_LAG_ALERT,
            rediscover: Callable[[], AdminClient] | None = None) -> int:
    """`edgeq top`: run the app against a gateway's admin API until the user quits.

    `rediscover` builds a new client (e.g. re-reading `admin.json`) when the old one fails,
    which follows a gateway that restarted with a new token."""
    client.timeout = min(client.timeout, REQUEST_TIMEOUT)
    check_credentials(client)
    app = TopApp(AdminSource(client, rediscover), lag_alert=lag_alert)
    app.run()
    if app.refused is not None:
        raise AdminError(app.refused, 401)
    return app.return_code or 0


def check_credentials(client: AdminClient) -> None:
    """Refuse to start on credentials the gateway refuses (retrying would never help);
    an unreachable gateway is fine: the view shows the banner until it answers."""
    try:
        client.stats()
    except AdminError as e:
        if e.status != 401:
            return
        if client.authorization.startswith("Basic"):
            fix = "check the user (it must be in admin.users) and its password"
        elif client.found_in is not None:
            fix = (f"the token in {client.found_in} is not the gateway's: is --data-dir the "
                   "data directory of the gateway at that address?")
        else:
            fix = ("pass the gateway's token (admin.token, or the one in DATA_DIR/admin.json) "
                   "with --token or EDGEQ_ADMIN_TOKEN")
        raise AdminError(f"the gateway at {client.url} refused the admin credentials: {fix}",
                         401) from None
