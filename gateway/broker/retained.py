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
        out = _walk(self._root, topic_filter.split("/"))
        return [m for m in out if not m.expired(now)]


def _walk(root: _Node, levels: list[str]) -> list[Message]:
    """Retained messages under `root` matching the filter `levels`. An explicit stack, not
    recursion: a stored topic may be deeper than Python's recursion limit."""
    out: list[Message] = []
    stack: list[tuple[_Node, int]] = [(root, 0)]
    while stack:
        node, i = stack.pop()
        top = node is root
        if i == len(levels):
            if node.message is not None:
                out.append(node.message)
            continue
        level = levels[i]
        if level == "#":
            if node.message is not None and not top:
                out.append(node.message)
            _collect_all(node, out, skip_dollar=top)
        elif level == "+":
            stack.extend((child, i + 1) for name, child in node.children.items()
                         if not (top and name.startswith("$")))
        else:
            exact = node.children.get(level)
            if exact is not None:
                stack.append((exact, i + 1))
    return out


def _collect_all(node: _Node, out: list[Message], skip_dollar: bool) -> None:
    stack = [child for name, child in node.children.items()
             if not (skip_dollar and name.startswith("$"))]
    while stack:
        child = stack.pop()
        if child.message is not None:
            out.append(child.message)
        stack.extend(child.children.values())
