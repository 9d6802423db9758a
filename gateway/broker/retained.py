"""Retained messages: set, replace, clear with an empty payload, and find by topic filter.

Kept in a level tree so a wildcard subscription walks only the branches it can match, and
persisted through the store so they survive a restart (as Mosquitto's do).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.messages import Message


class _Node:
    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.message: Message | None = None


class RetainedStore:
    def __init__(self, persist: Callable[[str, Message | None], None] | None = None) -> None:
        self._root = _Node()
        self._persist = persist
        self.count = 0

    def set(self, message: Message, persist: bool = True) -> None:
        """Store `message` for its topic; an empty payload clears the topic [MQTT-3.3.1-6]."""
        if not message.payload:
            self._clear(message.topic)
        else:
            node = self._root
            for level in message.topic.split("/"):
                node = node.children.setdefault(level, _Node())
            self.count += node.message is None
            node.message = message
        if persist and self._persist is not None:
            self._persist(message.topic, message if message.payload else None)

    def _clear(self, topic: str) -> None:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic.split("/"):
            found = node.children.get(level)
            if found is None:
                return
            path.append((node, level))
            node = found
        if node.message is not None:
            node.message = None
            self.count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.message is not None or child.children:
                break
            del parent.children[level]

    def matching(self, topic_filter: str, now: float) -> list[Message]:
        """Unexpired retained messages whose topic matches `topic_filter`."""
        out: list[Message] = []
        _walk(self._root, topic_filter.split("/"), 0, out, top=True)
        return [m for m in out if not m.expired(now)]


def _walk(node: _Node, levels: list[str], i: int, out: list[Message], top: bool = False) -> None:
    if i == len(levels):
        if node.message is not None:
            out.append(node.message)
        return
    level = levels[i]
    if level == "#":
        if node.message is not None and not top:
            out.append(node.message)
        _collect_all(node, out, skip_dollar=top)
    elif level == "+":
        for name, child in node.children.items():
            if not (top and name.startswith("$")):
                _walk(child, levels, i + 1, out)
    else:
        exact = node.children.get(level)
        if exact is not None:
            _walk(exact, levels, i + 1, out)


def _collect_all(node: _Node, out: list[Message], skip_dollar: bool) -> None:
    for name, child in node.children.items():
        if skip_dollar and name.startswith("$"):
            continue
        if child.message is not None:
            out.append(child.message)
        _collect_all(child, out, False)
