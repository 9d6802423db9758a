"""A subscription trie: topic filters in, the subscribers of a topic out.

Each level of a filter is one node; `+` and `#` are ordinary child keys that the lookup visits
alongside the literal level. Topics beginning with `$` are not matched by a wildcard in the
first level [MQTT-4.7.2-1]. Values are kept per (filter, key) so one client's overlapping
subscriptions are all reported and the caller decides how to merge them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Node(Generic[K, V]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K, V]] = {}
        self.values: dict[K, V] = {}


class TopicTrie(Generic[K, V]):
    """Maps topic filters to `{key: value}`; `match(topic)` yields every (key, value) hit."""

    def __init__(self) -> None:
        self._root: _Node[K, V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def set(self, topic_filter: str, key: K, value: V) -> bool:
        """Store `value` for `key` under `topic_filter`; True when it was not there before."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        is_new = key not in node.values
        node.values[key] = value
        self._count += is_new
        return is_new

    def get(self, topic_filter: str, key: K) -> V | None:
        node = self._find(topic_filter)
        return None if node is None else node.values.get(key)

    def remove(self, topic_filter: str, key: K) -> V | None:
        """Remove and return the value of `key` under `topic_filter`; prune empty nodes."""
        path: list[tuple[_Node[K, V], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        if key not in node.values:
            return None
        value = node.values.pop(key)
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.values or child.children:
                break
            del parent.children[level]
        return value

    def _find(self, topic_filter: str) -> _Node[K, V] | None:
        node: _Node[K, V] | None = self._root
        for level in topic_filter.split("/"):
            if node is None:
                return None
            node = node.children.get(level)
        return node

    def match(self, topic: str) -> list[tuple[K, V]]:
        """Every (key, value) whose filter matches `topic`."""
        out: list[tuple[K, V]] = []
        levels = topic.split("/")
        depth = len(levels)
        # An explicit stack, not recursion: a topic may have thousands of levels.
        stack: list[tuple[_Node[K, V], int]] = []
        if topic[:1] == "$":
            child = self._root.children.get(levels[0])
            if child is not None:
                stack.append((child, 1))
        else:
            stack.append((self._root, 0))
        while stack:
            node, i = stack.pop()
            children = node.children
            hash_node = children.get("#")
            if hash_node is not None and hash_node.values:
                out.extend(hash_node.values.items())
            if i == depth:
                out.extend(node.values.items())
                continue
            plus = children.get("+")
            if plus is not None:
                stack.append((plus, i + 1))
            child = children.get(levels[i])
            if child is not None:
                stack.append((child, i + 1))
        return out

    def items(self) -> Iterator[tuple[str, K, V]]:
        """Every (filter, key, value) stored, in no particular order."""
        stack: list[tuple[str, _Node[K, V]]] = [("", self._root)]
        while stack:
            prefix, node = stack.pop()
            for key, value in node.values.items():
                yield prefix, key, value
            for level, child in node.children.items():
                stack.append((f"{prefix}/{level}" if node is not self._root else level, child))
