"""MQTT topic-filter matching for ACL rules: validation, `matches` and `covers`.

Private to `gateway.auth` and deliberately small: the broker's routing uses its own trie in
`gateway.mqtt`. Rules from the MQTT spec that matter here: `+` is exactly one level, `#` is the
last level and also matches its parent (`a/#` matches `a`), and a topic starting with `$` is
not matched by a wildcard in the first level [MQTT-4.7.2-1].
"""

from __future__ import annotations


def filter_error(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid MQTT topic filter, or None if it is."""
    if not topic_filter:
        return "empty topic filter"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level, and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def covers(outer: str, inner: str) -> bool:
    """True when every topic matched by filter `inner` is also matched by filter `outer`.

    With a plain topic as `inner` this is ordinary matching (see `matches`)."""
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
    """True when the topic name `topic` (no wildcards) matches `topic_filter`."""
    return covers(topic_filter, topic)
