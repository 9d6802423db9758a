"""Last-value key extraction is bounded: hostile payloads give no key, never an exception."""

from __future__ import annotations

import pytest

from gateway.lastvalue import MAX_JSON_BYTES, MAX_JSON_DEPTH, KeyUnreadable, compile_key

KEY = compile_key("json:a.b")


def key(payload: bytes) -> str | None:
    return KEY("t", payload, {}, "c")


@pytest.mark.parametrize("payload", [b"[" * 60_000, b'{"a":' * 12_000, b"[" * 1000 + b"]" * 1000,
                                     b'{"a": {"b": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (
                                         MAX_JSON_DEPTH + 1) + b"}}"],
                         ids=["unclosed-arrays", "unclosed-objects", "1000-deep", "just-over"])
def test_nesting_beyond_the_limit_is_unreadable(payload: bytes) -> None:
    with pytest.raises(KeyUnreadable, match="nested"):
        key(payload)


def test_a_payload_beyond_the_size_limit_is_unreadable() -> None:
    payload = b'{"a": {"b": "x"}, "pad": "' + b"y" * MAX_JSON_BYTES + b'"}'
    with pytest.raises(KeyUnreadable, match="bytes"):
        key(payload)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    deep_text = '"' + "[{" * 1000 + '\\"]"'
    assert key(f'{{"pad": {deep_text}, "a": {{"b": "7"}}}}'.encode()) == "7"


def test_nesting_up_to_the_limit_is_read() -> None:
    inner = "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)
    assert key(f'{{"a": {{"b": "k", "c": {inner}}}}}'.encode()) == "k"


def test_malformed_json_is_simply_keyless() -> None:
    assert key(b"not json") is None
    assert key(b"\xff\xfe") is None
    assert key(b"[1, 2]") is None


def test_alternatives_fall_through_an_unreadable_payload() -> None:
    either = compile_key("json:a.b|topic_level:0")
    assert either("t0/x", b"[" * 100_000, {}, "c") == "t0"
