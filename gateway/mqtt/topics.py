"""Topic names, topic filters and shared-subscription filters: validation and matching rules.

Pure string functions (MQTT 5.0 §4.7, §4.8.2), the one place topic matching is written (routing,
queues, bridges and ACL rules use it); the trie that indexes filters is `matcher.py`, tested
against `matches`.
"""

from __future__ import annotations

from typing import NamedTuple

SHARE_PREFIX = "$share/"


def topic_name_error(topic: str) -> str | None:
    """Why `topic` is not a valid topic name for PUBLISH, or None if it is."""
    if not topic:
        return "empty topic name"
    if "+" in topic or "#" in topic:
        return "wildcard in a topic name"
    return _string_error(topic, "topic name")


def topic_filter_error(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid topic filter, or None if it is."""
    if not topic_filter:
        return "empty topic filter"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be the last level on its own"
        if "+" in level and level != "+":
            return "'+' must occupy a whole level"
    return _string_error(topic_filter, "topic filter")


def _string_error(text: str, what: str) -> str | None:
    """The rules every MQTT string obeys: no U+0000 [MQTT-4.7.3-2], at most 65535 bytes."""
    if "\x00" in text:
        return f"U+0000 in a {what}"
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return f"surrogate code point in a {what}"
    if size > 0xFFFF:
        return f"{what} longer than 65535 bytes"
    return None


class SharedFilter(NamedTuple):
    group: str
    filter: str


def parse_shared(topic_filter: str) -> SharedFilter | None:
    """Split `$share/<group>/<filter>`; None if not a shared filter. Raises ValueError if bad."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, sep, rest = topic_filter[len(SHARE_PREFIX):].partition("/")
    if not group or not sep or "+" in group or "#" in group:
        raise ValueError("shared subscription needs $share/<group>/<filter>")
    error = topic_filter_error(rest)
    if error:
        raise ValueError(error)
    return SharedFilter(group, rest)


def covers(outer: str, inner: str) -> bool:
    """Whether every topic that filter `inner` matches is also matched by filter `outer` (an ACL
    rule covering a SUBSCRIBE filter: `a/#` covers `a/+/b`, not the reverse). With a topic name
    as `inner` this is matching (`matches`). `#` also matches its parent level; a topic starting
    with `$` is not matched by a wildcard in the first level [MQTT-4.7.2-1]."""
    out, inn = outer.split("/"), inner.split("/")
    if inn[0].startswith("$") and out[0] in ("+", "#"):
        return False
    for i, level in enumerate(out):
        if level == "#":
            return True
        if i >= len(inn):
            return False
        if level == "+":
            if inn[i] == "#":
                return False
        elif level != inn[i]:
            return False
    return len(out) == len(inn)


def matches(topic_filter: str, topic: str) -> bool:
    """Whether the topic name `topic` matches `topic_filter` (the reference rule the trie must
    agree with)."""
    return covers(topic_filter, topic)


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter
