"""Connected MQTT clients (`c`), refreshed from the app's snapshots."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from tui import fmt
from tui.model import ClientRow, Snapshot
from tui.widgets.status import Banner

COLUMNS = (("client_id", "client id", 22), ("protocol", "MQTT", 5), ("username", "user", 8),
           ("peer", "address", 21), ("connected", "up", 6), ("keepalive", "ka", 4),
           ("inflight", "infl", 5), ("queued", "queued", 6))
RIGHT = {"connected", "keepalive", "inflight", "queued"}


def cells(c: ClientRow) -> list[Text]:
    values = {"client_id": fmt.clip(c.client_id, 22), "protocol": c.protocol,
              "username": fmt.clip(c.username, 8), "peer": fmt.clip(c.peer, 21),
              "connected": fmt.seconds(c.connected_seconds), "keepalive": str(c.keepalive),
              "inflight": str(c.inflight), "queued": str(c.queued)}
    return [Text(values[key], justify="right" if key in RIGHT else "left")
            for key, _, _ in COLUMNS]


class ClientsScreen(Screen[None]):
    BINDINGS = [Binding("escape,c", "back", "back"),
                Binding("question_mark", "app.help", "help"), Binding("q", "app.quit", "quit")]

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield Label("Connected clients", id="clients-title", classes="section")
        yield DataTable[Text](id="clients", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#clients", DataTable)
        for key, label, width in COLUMNS:
            table.add_column(Text(label, justify="right" if key in RIGHT else "left"), key=key,
                             width=width)
        if self.snapshot is not None:
            self.show(self.snapshot)

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        clients = sorted(snapshot.clients, key=lambda c: c.client_id)
        self.query_one("#clients-title", Label).update(f"Connected clients ({len(clients)})")
        table = self.query_one("#clients", DataTable)
        keep = table.cursor_row
        table.clear()
        for c in clients:
            table.add_row(*cells(c))
        if clients:
            table.move_cursor(row=min(keep, len(clients) - 1), animate=False)

    def action_back(self) -> None:
        self.dismiss(None)
