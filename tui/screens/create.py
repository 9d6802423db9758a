"""The new-queue form (`n`): the common queue settings, sent to the gateway from a worker.

The form stays open and shows the gateway's answer when it refuses (bad filter, duplicate
name...), so the user can fix a field instead of typing everything again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select

from tui.source import AdminError

DISPATCH = ("round_robin", "least_inflight", "random", "sticky")
OVERFLOW = ("block", "drop_oldest", "reject_new")


def queue_fields(filter_: str, name: str, dispatch: str, overflow: str, max_messages: str,
                 last_value_key: str, template: bool) -> dict[str, Any]:
    """The admin API's JSON for a new queue; empty fields keep the gateway's defaults."""
    fields: dict[str, Any] = {"filter": filter_.strip(), "dispatch": dispatch,
                              "overflow": overflow}
    if name.strip():
        fields["name"] = name.strip()
    if max_messages.strip():
        fields["max_messages"] = int(max_messages)
    if last_value_key.strip():
        fields["last_value_key"] = last_value_key.strip()
    if template:
        fields["template"] = True
    return fields


class CreateQueueScreen(ModalScreen[str | None]):
    """Answers the created queue's name, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, create: Callable[[dict[str, Any]], str]) -> None:
        super().__init__()
        self.create = create

    def compose(self) -> ComposeResult:
        with Vertical(id="create", classes="dialog"):
            yield Label("New queue   (Tab: next field · Enter: create · Esc: cancel)",
                        classes="dialog-title")
            with Grid(id="create-form"):
                yield Label("topic filter")
                yield Input(placeholder="images/+", id="filter", compact=True)
                yield Label("name")
                yield Input(placeholder="(the filter)", id="name", compact=True)
                yield Label("dispatch")
                yield Select([(d, d) for d in DISPATCH], value="round_robin", id="dispatch",
                             allow_blank=False, compact=True)
                yield Label("when full")
                yield Select([(o, o) for o in OVERFLOW], value="block", id="overflow",
                             allow_blank=False, compact=True)
                yield Label("max messages")
                yield Input(placeholder="1000000", id="max_messages", type="integer",
                            compact=True)
                yield Label("last-value key")
                yield Input(placeholder="user_property:command_type", id="last_value_key",
                            compact=True)
                yield Label("per topic")
                yield Checkbox("template: one queue per topic", id="template", compact=True)
            yield Label("", id="create-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel (Esc)", id="cancel", compact=True)
                yield Button("Create (Enter)", id="submit", variant="primary",
                             compact=True)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def fields(self) -> dict[str, Any]:
        return queue_fields(
            self.query_one("#filter", Input).value, self.query_one("#name", Input).value,
            str(self.query_one("#dispatch", Select).value),
            str(self.query_one("#overflow", Select).value),
            self.query_one("#max_messages", Input).value,
            self.query_one("#last_value_key", Input).value,
            self.query_one("#template", Checkbox).value)

    def submit(self) -> None:
        fields = self.fields()
        if not fields["filter"]:
            self.show_error("a topic filter is needed, e.g. images/+ or telemetry/#")
            self.query_one("#filter", Input).focus()
            return
        self.show_error("creating…")
        self._send(fields)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _send(self, fields: dict[str, Any]) -> None:
        try:
            name = self.create(fields)
        except AdminError as e:
            self.app.call_from_thread(self.show_error, f"refused: {e}")
            return
        self.app.call_from_thread(self.dismiss, name)

    def show_error(self, text: str) -> None:
        self.query_one("#create-error", Label).update(text)
