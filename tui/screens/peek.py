"""One message in full (Enter on a listed message): topic, QoS, size, producer, age, for a dead
letter why and where it died and after how many deliveries, its MQTT properties, and the whole
payload as text, JSON (indented) or a hex dump (t / j / h).

The payload is fetched again with the message (`?payload=1`): the list holds only its start.
Every byte the producer chose is drawn escaped, so a payload cannot drive the terminal.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Literal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui import fmt
from tui.model import DeadLetter
from tui.source import AdminError, DataSource

View = Literal["text", "json", "hex"]
LABEL = 13  # cells for the header's field names ("content type")
HEX_WIDTH = 16
SHOWN_BYTES = 64 * 1024  # bytes per hex dump line: 72 cells, fits 80 columns


def as_json(payload: bytes) -> str | None:
    """The payload indented, if it is JSON."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def as_text(payload: bytes) -> str:
    """UTF-8 (undecodable bytes as �), control characters escaped line by line."""
    lines = payload.decode("utf-8", "replace").split("\n")
    return "\n".join(fmt.printable(line) for line in lines)


def as_hex(payload: bytes) -> str:
    """`0000  7b 22 61 …  |{"a…|`: offset, bytes, and the printable ASCII of each."""
    lines = []
    for offset in range(0, len(payload), HEX_WIDTH):
        chunk = payload[offset:offset + HEX_WIDTH]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {chunk.hex(' '):<{HEX_WIDTH * 3 - 1}}  |{ascii_}|")
    return "\n".join(lines)


def best_view(payload: bytes) -> View:
    """JSON if it parses, text if it is UTF-8, hex otherwise."""
    if as_json(payload) is not None:
        return "json"
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "hex"
    return "text"


def render_payload(payload: bytes, view: View) -> str:
    """The payload in `view`, its first SHOWN_BYTES only (a Pi draws a 10 MB dump slowly)."""
    if not payload:
        return "(empty payload)"
    if len(payload) > SHOWN_BYTES:
        rest = len(payload) - SHOWN_BYTES
        return (f"{render_payload(payload[:SHOWN_BYTES], view)}\n… {rest} more bytes not "
                "shown")
    if view == "json":
        indented = as_json(payload)
        if indented is None:
            return f"not JSON; as text:\n{as_text(payload)}"
        return "\n".join(fmt.printable(line) for line in indented.split("\n"))
    return as_hex(payload) if view == "hex" else as_text(payload)


def describe(m: DeadLetter, now: float) -> str:
    """The header: everything about the message but its payload."""
    fields = [("topic", fmt.printable(m.topic)),
              ("message", f"QoS {m.qos} · {m.bytes} bytes · from {fmt.printable(m.client_id)}"
               + (f" · {fmt.seconds(now - m.created)} ago" if m.created else ""))]
    if m.reason:
        times = "delivery" if m.tries == 1 else "deliveries"
        fields.append(("died", f"{fmt.printable(m.reason)} in {fmt.printable(m.source)} "
                               f"after {m.tries} {times}"))
    else:
        fields.append(("deliveries", str(m.deliveries)))
    fields += _properties(m.properties)
    return "\n".join(f"{fmt.clip(name, LABEL):<{LABEL}} {value}" for name, value in fields)


def _properties(props: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for name, value in sorted(props.items()):
        if name == "user_property" and isinstance(value, list):
            shown += [("user prop", fmt.printable(f"{pair[0]}={pair[1]}"))
                      for pair in value if isinstance(pair, list) and len(pair) == 2]
        else:
            shown.append((name.replace("_", " "), fmt.printable(str(value))))
    return shown


class PeekScreen(ModalScreen[None]):
    """`replay` (for a dead letter) puts this one message back into its queue, after a
    confirmation the app asks for."""

    BINDINGS = [Binding("escape,q", "close", "back"), Binding("t", "view('text')", "text"),
                Binding("j", "view('json')", "JSON"), Binding("h", "view('hex')", "hex"),
                Binding("R", "replay", "replay this one")]

    def __init__(self, queue: str, index: int, listed: DeadLetter, source: DataSource,
                 replay: Callable[[int, DeadLetter], None] | None = None) -> None:
        super().__init__()
        self.queue_name = queue
        self.index = index
        self.listed = listed
        self.source = source
        self._replay = replay
        self.message: DeadLetter | None = None
        self.view: View = "text"

    def compose(self) -> ComposeResult:
        with Vertical(id="peek", classes="dialog"):
            yield Label(f"Message {self.index + 1} of {fmt.printable(self.queue_name)}   "
                        f"(t text · j JSON · h hex{' · R replay' if self._replay else ''} · Esc "
                        "back)", classes="dialog-title",
                        markup=False)
            yield Static(describe(self.listed, time.time()), id="peek-header", markup=False)
            yield Label("payload: loading…", id="peek-view", classes="section", markup=False)
            with VerticalScroll(id="peek-scroll"):
                yield Static("", id="peek-payload", markup=False)

    def on_mount(self) -> None:
        self.query_one("#peek-scroll", VerticalScroll).focus()
        self._fetch()

    @work(thread=True, exit_on_error=False)
    def _fetch(self) -> None:
        try:
            found: DeadLetter | str | None = self.source.message(self.queue_name, self.index)
        except AdminError as e:
            found = str(e)
        if isinstance(found, DeadLetter) and (found.topic, found.created) != (
                self.listed.topic, self.listed.created):
            found = None
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self._show, found)

    def _show(self, found: DeadLetter | str | None) -> None:
        if found is None or isinstance(found, str):
            why = found or "the message is no longer there (consumed, replayed or purged)"
            self.query_one("#peek-view", Label).update(f"payload: {why}")
            return
        self.message = found
        self.query_one("#peek-header", Static).update(describe(found, time.time()))
        self.view = best_view(found.whole or b"")
        self._show_payload()

    def _show_payload(self) -> None:
        if self.message is None:
            return
        payload = self.message.whole or b""
        self.query_one("#peek-view", Label).update(
            f"payload as {self.view} ({len(payload)} bytes)")
        self.query_one("#peek-payload", Static).update(render_payload(payload, self.view))

    def action_view(self, view: View) -> None:
        self.view = view
        self._show_payload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self._replay is not None or action != "replay"

    def action_replay(self) -> None:
        if self._replay is not None:
            self._replay(self.index, self.message or self.listed)

    def action_close(self) -> None:
        self.dismiss(None)
