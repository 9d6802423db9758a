"""The help screen (`?`): keys, what each column means, and what the colours say."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

HELP = """\
[b]Queues[/b]  ↑↓ PgUp PgDn move · Enter details (dead letters on a dlq row)
  / filter by name · s next sort column · S reverse · e hide empty
  c clients · n new queue · p purge · d delete · r refresh
  ? help · q quit
[b]Queue details[/b]  m waiting messages · x dead letters · p purge
  d delete · r refresh · Esc back
[b]Messages, dead letters[/b]  Enter peek · R replay all into their queues
  P purge · r refresh · Esc back
[b]Peek[/b]  t text · j JSON · h hex · R replay this dead letter · Esc back
[b]Dialogs[/b]  y confirm · n or Esc cancel · Tab next field
[b]Storage line[/b]  db+wal: database and journal files · free: disk
  free (reserve: storage.min_free_bytes) · mem: in use/budget ·
  paused: producers held back. Red when the disk or memory is full,
  producers are paused or the store reports an error.
[b]Columns[/b]
  type    std · lvq last-value · tmpl template · inst one of its
          per-topic queues · dlq dead-letter queue
  depth   messages stored (ready + in flight) · bytes their size
  fill    of the tighter limit, max_messages or max_bytes
  cons    consumers online · infl sent, not yet acknowledged
  in/s    enqueued per second · out/s acknowledged per second: means
          over the gateway's last history interval (5 s by default)
  lag     ready messages not yet delivered to any consumer
  lag s   age of the oldest unacknowledged message
  oldest  age of the oldest message waiting for (re)delivery
  blkd    times a full block queue paused a producer
  nack    rejected by a consumer or refused by reject_new
  dead    moved to the dead-letter queue since start
  (blkd, nack and bytes need a wide terminal; details show them all)
[b]Trend[/b]  depth, in/s and lag of the selected queue over the gateway's
  history window (15 min by default; blank: not sampled yet)
[b]Dead letters[/b]  reason: max_deliveries, packet_too_large or expired;
  tries: deliveries in the queue it died in (x-death-deliveries)
[b]Alerts[/b]
  Lag of {lag_alert} or more (--lag-alert): the row turns red with a "!"
  before the name, and the top line counts the queue as lagging.
[b]Connection[/b]
  Figures come from the gateway's admin API every second. When it
  cannot be reached a red banner says why; edgeq top retries every
  second and clears the banner as soon as the gateway answers."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "close")]

    def __init__(self, lag_alert: str) -> None:
        super().__init__()
        self.lag_alert = lag_alert

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Label("edgeq top — help   (Esc to close)", classes="dialog-title")
            yield Static(HELP.format(lag_alert=self.lag_alert), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help", VerticalScroll).focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
