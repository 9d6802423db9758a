"""Connected MQTT clients (`c`), refreshed from the app's snapshots."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Label

from tui import fmt
from tui.model import ClientRow, Snapshot
from tui.widgets.compact import Col, CompactTable, Row
from tui.widgets.status import Banner, StorageLine


class ClientsTable(CompactTable):
    COLUMNS = (Col("client_id", "client id", least=12, most=32), Col("protocol", "MQTT", 5),
               Col("username", "user", 8), Col("peer", "address", 21),
               Col("connected", "up", 5, right=True), Col("keepalive", "ka", 3, right=True),
               Col("inflight", "infl", 4, right=True), Col("queued", "queued", 6, right=True))


def cells(c: ClientRow) -> tuple[str, ...]:
    return (c.client_id, c.protocol, c.username, c.peer, fmt.seconds(c.connected_seconds),
            str(c.keepalive), str(c.inflight), str(c.queued))


class ClientsScreen(Screen[None]):
    BINDINGS = [Binding("escape,c", "back", "back"),
                Binding("question_mark", "app.help", "help"), Binding("q", "app.quit", "quit")]

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield StorageLine(id="storage")
        yield Label("Connected clients", id="clients-title", classes="section")
        yield ClientsTable(id="clients")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot)

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        clients = sorted(snapshot.clients, key=lambda c: c.client_id)
        self.query_one("#clients-title", Label).update(f"Connected clients ({len(clients)})")
        self.query_one(ClientsTable).set_rows(
            [Row(str(i), cells(c)) for i, c in enumerate(clients)])

    def action_back(self) -> None:
        self.dismiss(None)
