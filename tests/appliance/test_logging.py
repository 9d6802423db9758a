"""Logs: structured journal fields under systemd, plain lines on stderr elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.appliance.systemd import journal_handler, setup_logging, under_systemd


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("edgeq-test")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    log.handlers.clear()


def test_journal_gets_the_structured_fields(logger: logging.Logger) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    handler = journal_handler(sender=lambda text, /, **fields: sent.append((text, fields)))
    assert handler is not None
    logger.addHandler(handler)
    logger.warning("consumer %s too slow", "w1",
                   extra={"client_id": "w1", "queue": "orders", "REASON": "ack timeout"})
    message, fields = sent[0]
    assert message == "consumer w1 too slow"
    assert fields["CLIENT_ID"] == "w1"
    assert fields["QUEUE"] == "orders"
    assert fields["REASON"] == "ack timeout"
    assert fields["SYSLOG_IDENTIFIER"] == "edgeq"
    assert fields["PRIORITY"] == "4"


def test_stderr_lines_carry_the_fields(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    handler = setup_logging("info")
    try:
        assert isinstance(handler, logging.StreamHandler)
        logging.getLogger("gateway.test").info("client refused", extra={"client_id": "c1",
                                                                        "reason": "0x86"})
        line = capsys.readouterr().err.strip()
        assert line.endswith(" INFO gateway.test: client refused client_id=c1 reason=0x86")
    finally:
        logging.getLogger().removeHandler(handler)


def test_setup_logging_replaces_its_own_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    root = logging.getLogger()
    first = setup_logging("INFO")
    second = setup_logging(logging.DEBUG)
    try:
        assert first not in root.handlers
        assert second in root.handlers
        assert root.level == logging.DEBUG
    finally:
        root.removeHandler(second)


def test_under_systemd() -> None:
    assert under_systemd({"INVOCATION_ID": "abc"})
    assert under_systemd({"JOURNAL_STREAM": "8:1234"})
    assert not under_systemd({})


def test_journal_chosen_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCATION_ID", "abc")
    handler = setup_logging("INFO")
    try:
        assert type(handler).__name__ == "JournalHandler"
    finally:
        logging.getLogger().removeHandler(handler)
