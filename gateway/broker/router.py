"""Who gets a message: the subscription trie, overlapping subscriptions and shared groups.

Non-shared subscriptions are stored under (filter, client id); overlapping matches of one
client are merged into one delivery with the highest QoS and every subscription identifier.
Each shared group `$share/<group>/<filter>` is one trie entry whose members take turns,
preferring connected members.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.broker.session import SubEntry
from gateway.mqtt.matcher import TopicTrie


@dataclass(slots=True, eq=False)
class SharedGroup:
    name: str
    members: dict[str, SubEntry] = field(default_factory=dict)
    turn: int = 0

    def pick(self) -> SubEntry | None:
        """Round robin over members, connected ones first."""
        entries = list(self.members.values())
        if not entries:
            return None
        n = len(entries)
        for i in range(n):
            entry = entries[(self.turn + i) % n]
            if entry.session.connected and entry.session.window() > 0:
                self.turn = (self.turn + i + 1) % n
                return entry
        for i in range(n):
            entry = entries[(self.turn + i) % n]
            if entry.session.connected:
                self.turn = (self.turn + i + 1) % n
                return entry
        entry = entries[self.turn % n]
        self.turn = (self.turn + 1) % n
        return entry


Target = tuple[SubEntry, int, tuple[int, ...]]


class Router:
    def __init__(self) -> None:
        self._trie: TopicTrie[object, SubEntry | SharedGroup] = TopicTrie()
        self.count = 0

    def subscribe(self, topic_filter: str, entry: SubEntry, group: str | None = None) -> bool:
        """Add or replace; True when the subscription is new."""
        if group is None:
            is_new = self._trie.set(topic_filter, entry.session.client_id, entry)
        else:
            shared = self._trie.get(topic_filter, ("$share", group))
            if not isinstance(shared, SharedGroup):
                shared = SharedGroup(group)
                self._trie.set(topic_filter, ("$share", group), shared)
            is_new = entry.session.client_id not in shared.members
            shared.members[entry.session.client_id] = entry
        self.count += is_new
        return is_new

    def unsubscribe(self, topic_filter: str, client_id: str, group: str | None = None) -> bool:
        if group is None:
            removed = self._trie.remove(topic_filter, client_id) is not None
        else:
            shared = self._trie.get(topic_filter, ("$share", group))
            removed = isinstance(shared, SharedGroup) and shared.members.pop(client_id,
                                                                             None) is not None
            if isinstance(shared, SharedGroup) and not shared.members:
                self._trie.remove(topic_filter, ("$share", group))
        self.count -= removed
        return removed

    def route(self, topic: str) -> list[Target]:
        """(entry, qos, subscription identifiers) per receiving session."""
        hits = self._trie.match(topic)
        if not hits:
            return []
        if len(hits) == 1:
            value = hits[0][1]
            entry = value.pick() if isinstance(value, SharedGroup) else value
            if entry is None:
                return []
            ident = (entry.identifier,) if entry.identifier else ()
            return [(entry, entry.options.qos, ident)]
        merged: dict[str, Target] = {}
        out: list[Target] = []
        for _, value in hits:
            if isinstance(value, SharedGroup):
                picked = value.pick()
                if picked is not None:
                    ident = (picked.identifier,) if picked.identifier else ()
                    out.append((picked, picked.options.qos, ident))
                continue
            cid = value.session.client_id
            ident = (value.identifier,) if value.identifier else ()
            prev = merged.get(cid)
            if prev is None:
                merged[cid] = (value, value.options.qos, ident)
            else:
                best = value if value.options.qos > prev[1] else prev[0]
                merged[cid] = (best, max(prev[1], value.options.qos), prev[2] + ident)
        out.extend(merged.values())
        return out
