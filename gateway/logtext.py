"""Client-supplied text made safe to print: in a log line, the journal or a terminal.

Client ids, user names, topics and queue names may hold any character MQTT allows, including
newlines (a forged log line) and ESC (a terminal escape sequence). `escape()` keeps printable
text as it is and writes every control character as a Python-style escape: `\\n`, `\\r`, `\\t`,
`\\xNN` (C0, DEL, C1) and `\\uNNNN` (line/paragraph separators and bidirectional overrides,
which reorder what a reader sees). A backslash is left as it is, so escaping twice changes
nothing; a backslash typed by a client therefore reads like an escape, never like a new line.

`EscapeFilter` applies it to whole log records (message with its arguments, and the structured
journal fields), so no call site can forget it. This module must not know about MQTT.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every control character written as an escape (see the module docstring)."""
    return _UNSAFE.sub(_escaped, text)


class EscapeFilter(logging.Filter):
    """Escapes a record's message (formatted with its arguments) and the named extra fields.

    Installed on the gateway's log handler: what a client sent is escaped wherever it is
    logged, including `extra={"CLIENT_ID": ...}` fields that the journal stores on their own.
    Tracebacks are the formatter's and stay multi-line."""

    def __init__(self, fields: Iterable[str]) -> None:
        super().__init__()
        self.fields = tuple(fields)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = escape(message)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        for field in self.fields:
            value = getattr(record, field, None)
            if isinstance(value, str):
                setattr(record, field, escape(value))
        return True
