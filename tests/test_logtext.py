"""`escape()`: printable text unchanged, every control character visible as an escape; used by
the log handler and the `edgeq queue list` table."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.appliance.systemd import journal_handler
from gateway.cli import _print_table
from gateway.logtext import escape


@pytest.mark.parametrize(("raw", "shown"), [
    ("sensor-1/température", "sensor-1/température"),
    ("a\nb\r\tc", "a\\nb\\r\\tc"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
    ("line\u2028sep \u202eevil", "line\\u2028sep \\u202eevil"),
    ("back\\slash", "back\\slash"),
])
def test_escape(raw: str, shown: str) -> None:
    assert escape(raw) == shown
    assert escape(shown) == shown  # escaping twice changes nothing


def test_the_journal_gets_escaped_message_and_fields() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    handler = journal_handler(sender=lambda text, /, **fields: sent.append((text, fields)))
    assert handler is not None
    log = logging.getLogger("edgeq-test-escape")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("client %s refused", "x\ny", extra={"CLIENT_ID": "x\ny", "queue": "q\x1b"})
    finally:
        log.removeHandler(handler)
    message, fields = sent[0]
    assert message == "client x\\ny refused"
    assert (fields["CLIENT_ID"], fields["QUEUE"]) == ("x\\ny", "q\\x1b")


def test_queue_list_prints_names_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    _print_table([{"name": "evil\x1b[2J/#", "kind": "standard", "depth": 0}])
    out = capsys.readouterr().out
    assert "evil\\x1b[2J/#" in out
    assert "\x1b" not in out
