"""systemd integration: sd_notify state changes, the watchdog, and logging to the journal.

`Notifier` tells systemd when the broker is ready, reloading or stopping, what its status line is,
and pings the watchdog *from the asyncio event loop*: the ping is an ordinary task, so a loop that
is blocked (a synchronous call that hangs, a busy loop) stops the pings and systemd restarts the
service after `WatchdogSec=`.

`setup_logging()` sends log records to the journal with structured fields (CLIENT_ID, QUEUE,
REASON, taken from `extra=` on the record) when the process runs under systemd, and to stderr
otherwise; either way with control characters escaped (`gateway.logtext`), since client ids
and topics in a log line are client-supplied text.

`systemd-python` is imported lazily and is optional: without it, notifications go through a
minimal implementation of the documented sd_notify datagram protocol, and logs go to stderr
(which journald captures as plain lines). This module must not know about MQTT or the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.logtext import EscapeFilter

log = logging.getLogger(__name__)

NotifySend = Callable[[str], bool]

#: Journal fields taken from log records; `extra={"client_id": ...}` or `extra={"CLIENT_ID": ...}`.
STRUCTURED_FIELDS = ("CLIENT_ID", "QUEUE", "REASON")


def _import_systemd(name: str) -> Any:
    """`systemd.<name>` from systemd-python, or None when it is not installed.

    Through importlib because the repository's own `systemd/` folder (unit files) looks like a
    namespace package to type checkers run from the repository root."""
    try:
        return importlib.import_module(f"systemd.{name}")
    except ImportError:
        return None


def _systemd_send() -> NotifySend | None:
    """`systemd.daemon.notify` if systemd-python is installed."""
    daemon = _import_systemd("daemon")
    if daemon is None:
        return None
    notify: NotifySend = daemon.notify
    return notify


def _socket_send(message: str) -> bool:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path or @abstract)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.debug("sd_notify %r failed: %s", message, exc)
        return False
    return True


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings (half of WATCHDOG_USEC), or None when no watchdog is armed
    for process `pid` (unset, malformed, or WATCHDOG_PID naming another process)."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    return int(usec) / 1_000_000 / 2


class Notifier:
    """sd_notify for the broker: `ready()`, `status()`, `reloading()`, `stopping()` and the
    watchdog. Every method is a no-op when NOTIFY_SOCKET is not set (not started by systemd).

    Typical use inside the running event loop::

        notifier = Notifier()
        notifier.start_watchdog()          # as early as possible
        ...bind listeners, open the store...
        notifier.ready("0 clients, backlog 0")
        ...
        notifier.reloading(); reload(); notifier.ready()
        ...
        notifier.stopping(); await notifier.stop_watchdog()
    """

    def __init__(self, env: Mapping[str, str] | None = None, send: NotifySend | None = None,
                 pid: int | None = None) -> None:
        """`env` (default os.environ) decides whether notifying is on and the watchdog
        interval; `send` defaults to systemd.daemon.notify, or the built-in datagram sender
        when systemd-python is absent (both read the socket address from os.environ)."""
        env = os.environ if env is None else env
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.watchdog_interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        self._send = send or _systemd_send() or _socket_send
        self._watchdog_task: asyncio.Task[None] | None = None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one notification; False when disabled or not delivered."""
        if not self.enabled:
            return False
        return bool(self._send("\n".join(assignments)))

    def ready(self, status: str | None = None) -> None:
        """The service is up: listeners bound, storage open (also ends a reload)."""
        self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status is not None else []))

    def status(self, text: str) -> None:
        """The one-line status shown by `systemctl status edgeq`."""
        self.notify(f"STATUS={_one_line(text)}")

    def reloading(self) -> None:
        """A reload started; call `ready()` when it is done."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        """A clean shutdown started."""
        self.notify("STOPPING=1")

    def start_watchdog(self) -> asyncio.Task[None] | None:
        """Start pinging from the running loop; None when systemd armed no watchdog."""
        if not self.enabled or self.watchdog_interval is None:
            return None
        if self._watchdog_task is None or self._watchdog_task.done():
            self._watchdog_task = asyncio.get_running_loop().create_task(
                self.run_watchdog(self.watchdog_interval), name="sd-watchdog")
        return self._watchdog_task

    async def stop_watchdog(self) -> None:
        """Stop the pings (at shutdown, after `stopping()`)."""
        task, self._watchdog_task = self._watchdog_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_watchdog(self, interval: float) -> None:
        """Send WATCHDOG=1 every `interval` seconds for as long as the loop runs freely."""
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


def format_status(clients: int, backlog: int, queues: int | None = None) -> str:
    """The STATUS= line: `12 clients, 3 queues, backlog 4096 messages`."""
    parts = [f"{clients} client{'s' if clients != 1 else ''}"]
    if queues is not None:
        parts.append(f"{queues} queue{'s' if queues != 1 else ''}")
    parts.append(f"backlog {backlog} message{'s' if backlog != 1 else ''}")
    return ", ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- logging ---------------------------------------------------------------------------------

def under_systemd(env: Mapping[str, str] | None = None) -> bool:
    """True when systemd started this process (it sets INVOCATION_ID, and JOURNAL_STREAM when
    stderr goes to the journal)."""
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


class StructuredFields(logging.Filter):
    """Copies `client_id`/`queue`/`reason` from `extra=` to the journal's upper-case field names,
    so callers may write either spelling."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field in STRUCTURED_FIELDS:
            lower = getattr(record, field.lower(), None)
            if lower is not None and getattr(record, field, None) is None:
                setattr(record, field, lower)
        return True


class TextFormatter(logging.Formatter):
    """`2026-11-24 10:00:00 WARNING gateway.broker: message client_id=... queue=... reason=...`"""

    def __init__(self, timestamps: bool = True) -> None:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else \
            "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{name.lower()}={getattr(record, name)}" for name in STRUCTURED_FIELDS
                  if getattr(record, name, None) is not None]
        return " ".join([text, *fields]) if fields else text


def _add_filters(handler: logging.Handler) -> None:
    """Structured fields under their journal names, then client text escaped (log forging)."""
    handler.addFilter(StructuredFields())
    handler.addFilter(EscapeFilter(STRUCTURED_FIELDS))


def journal_handler(sender: Callable[..., Any] | None = None) -> logging.Handler | None:
    """A `systemd.journal.JournalHandler` with SYSLOG_IDENTIFIER=edgeq and the structured fields,
    or None when systemd-python is absent. `sender` replaces `journal.send` (for tests)."""
    journal = _import_systemd("journal")
    if journal is None:
        return None
    kwargs: dict[str, Any] = {"SYSLOG_IDENTIFIER": "edgeq"}
    if sender is not None:
        kwargs["sender_function"] = sender
    handler: logging.Handler = journal.JournalHandler(**kwargs)
    _add_filters(handler)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def stderr_handler(timestamps: bool = True) -> logging.Handler:
    """Plain lines on stderr, with the structured fields appended as `key=value`."""
    handler = logging.StreamHandler(sys.stderr)
    _add_filters(handler)
    handler.setFormatter(TextFormatter(timestamps))
    return handler


_INSTALLED_ATTR = "_edgeq_handler"


def setup_logging(level: int | str = "INFO", *, journal: bool | None = None) -> logging.Handler:
    """Configure the root logger once (calling again replaces our handler) and return the handler.

    `journal=None` decides by the environment: the journal under systemd, stderr otherwise.
    Under systemd without systemd-python, stderr lines lose their timestamps (journald adds its
    own)."""
    use_journal = under_systemd() if journal is None else journal
    handler = journal_handler() if use_journal else None
    if handler is None:
        handler = stderr_handler(timestamps=not under_systemd())
    setattr(handler, _INSTALLED_ATTR, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _INSTALLED_ATTR, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
