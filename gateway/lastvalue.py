"""Last-value key expressions: which part of a message names the value it replaces.

Forms: `user_property:NAME` (MQTT 5), `topic_level:N` (0-based), `json:PATH` (dotted, for 3.1.1
producers), `client_id`; alternatives joined by `|` are tried in
order (`user_property:command_type|json:command_type`). A message without the key yields
None and is kept as an ordinary message: never replaced and never dropped.

JSON payloads are read only within bounds (`MAX_JSON_BYTES`, `MAX_JSON_DEPTH`), checked before
parsing, so a hostile payload (`[` x 100,000) costs a bounded scan and never reaches the
parser's recursion limit. Beyond them a key function raises `KeyUnreadable`: the queue counts
it and keeps the message without a key.

Keys are strings. A JSON string is its own key, so `user_property:k|json:k` treats "on" from
either producer as one key. Other JSON scalars keep their type: they become their JSON text
behind a U+001E (RECORD SEPARATOR) tag, so the number 1, the string "1", `true` and "true" are
four keys; numbers compare by value (1 and 1.0 are one key). A key that itself starts with
U+001E is no key, so nothing can impersonate a tagged one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from gateway.mqtt.properties import Properties

KeyFunc = Callable[[str, bytes, Properties, str], str | None]
TYPED = "\x1e"
FORMS = ("user_property:NAME", "topic_level:N", "json:PATH", "client_id")
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class KeyUnreadable(ValueError):
    """The payload is beyond the bounds key extraction reads (size or nesting)."""


def key_expression_error(expression: str) -> str | None:
    """Why `expression` is not a key expression, or None."""
    try:
        compile_key(expression)
    except ValueError as e:
        return str(e)
    return None


def compile_key(expression: str) -> KeyFunc:
    """A function (topic, payload, properties, client_id) -> key or None."""
    if "|" in expression:
        alternatives = [compile_key(part) for part in expression.split("|")]

        def first(topic: str, payload: bytes, props: Properties, client_id: str) -> str | None:
            unreadable: KeyUnreadable | None = None
            for alternative in alternatives:
                try:
                    key = alternative(topic, payload, props, client_id)
                except KeyUnreadable as e:
                    unreadable = e
                    continue
                if key is not None:
                    return key
            if unreadable is not None:
                raise unreadable
            return None
        return first
    return _compile_one(expression)


def _compile_one(expression: str) -> KeyFunc:
    kind, _, arg = expression.partition(":")
    if kind == "client_id" and not arg:
        return lambda _t, _p, _props, client_id: _plain(client_id) if client_id else None
    if kind == "user_property" and arg:
        return _user_property(arg)
    if kind == "topic_level" and arg.isdigit():
        return _topic_level(int(arg))
    if kind == "json" and arg and all(arg.split(".")):
        return _json_path(arg.split("."))
    raise ValueError(f"{expression!r} is not a key expression; use one of {', '.join(FORMS)}")


def _user_property(name: str) -> KeyFunc:
    def key(_topic: str, _payload: bytes, props: Properties, _client_id: str) -> str | None:
        for k, v in props.get("user_property", ()):
            if k == name:
                return _plain(v)
        return None
    return key


def _topic_level(index: int) -> KeyFunc:
    def key(topic: str, _payload: bytes, _props: Properties, _client_id: str) -> str | None:
        levels = topic.split("/")
        return _plain(levels[index]) if index < len(levels) else None
    return key


def _json_path(path: list[str]) -> KeyFunc:
    def key(_topic: str, payload: bytes, _props: Properties, _client_id: str) -> str | None:
        check_json_bounds(payload)
        try:
            value: Any = json.loads(payload)
        except RecursionError:
            raise KeyUnreadable("the JSON payload is nested too deeply") from None
        except ValueError:  # UnicodeDecodeError included
            return None
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        if isinstance(value, (dict, list)) or value is None:
            return None
        if isinstance(value, str):
            return _plain(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        return TYPED + json.dumps(value)
    return key


def check_json_bounds(payload: bytes) -> None:
    """Raise `KeyUnreadable` when `payload` is larger than `MAX_JSON_BYTES` or its arrays and
    objects nest deeper than `MAX_JSON_DEPTH` (brackets inside strings do not count)."""
    if len(payload) > MAX_JSON_BYTES:
        raise KeyUnreadable(f"the payload is larger than {MAX_JSON_BYTES} bytes")
    if payload.count(b"[") + payload.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    for byte in _JSON_STRING.sub(b"", payload).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise KeyUnreadable(f"the JSON payload is nested more than {MAX_JSON_DEPTH} deep")


def _plain(key: str) -> str | None:
    """A string key as it is; None for one that could pass for a typed one."""
    return None if key.startswith(TYPED) else key
