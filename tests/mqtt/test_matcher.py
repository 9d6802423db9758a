"""TopicTrie: agrees with the reference `topics.matches`, and keeps its bookkeeping straight."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from gateway.mqtt.matcher import TopicTrie
from gateway.mqtt.topics import matches, topic_filter_error, topic_name_error
from tests.mqtt.strategies import FAST, THOROUGH

# Few distinct levels, so random filters and topics actually meet; '' makes empty levels
# (a//b, trailing and leading '/'), '$SYS' and '$x' make $-topics when they come first.
LITERALS = ["a", "b", "", "$SYS", "$x"]

topics = st.lists(st.sampled_from(LITERALS), min_size=1, max_size=5).map("/".join)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.sampled_from([*LITERALS, "+"]), max_size=5))
    if not "/".join(levels) or draw(st.booleans()):  # a filter is never empty
        levels.append("#")
    return "/".join(levels)


def node_count(trie: TopicTrie[int, str]) -> int:
    """Nodes below the root: what pruning must keep equal to the distinct filter prefixes."""
    stack = [trie._root]  # the test reaches in to prove empty branches are pruned
    count = 0
    while stack:
        node = stack.pop()
        count += len(node.children)
        stack.extend(node.children.values())
    return count


def prefixes(topic_filters: set[str]) -> set[tuple[str, ...]]:
    """Every distinct leading run of levels: one trie node each."""
    out: set[tuple[str, ...]] = set()
    for f in topic_filters:
        levels = tuple(f.split("/"))
        out.update(levels[:i] for i in range(1, len(levels) + 1))
    return out


# ---------------------------------------------------------------------------------- agreement

def test_strategies_make_valid_topics_and_filters() -> None:
    assert topic_name_error("$SYS//a/") is None
    assert topic_filter_error("$x/+//#") is None


@THOROUGH
@given(subs=st.lists(st.tuples(filters(), st.integers(0, 3)), max_size=25),
       topic_list=st.lists(topics, min_size=1, max_size=10))
def test_match_agrees_with_the_reference(subs: list[tuple[str, int]],
                                         topic_list: list[str]) -> None:
    trie: TopicTrie[int, str] = TopicTrie()
    for f, key in subs:
        trie.set(f, key, f)
    stored = set(subs)
    for topic in topic_list:
        expected = Counter((key, f) for f, key in stored if matches(f, topic))
        assert Counter(trie.match(topic)) == expected, topic


@FAST
@given(f=filters(), topic=topics)
def test_reference_never_matches_a_dollar_topic_with_a_leading_wildcard(f: str,
                                                                        topic: str) -> None:
    if topic.startswith("$") and f[:1] in ("+", "#"):
        assert not matches(f, topic)


# ---------------------------------------------------------------------------------- examples

@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("a/b", "a/b", True),
    ("a/b", "a/b/", False),
    ("a/+", "a/b", True),
    ("a/+", "a/", True),          # '+' matches an empty level
    ("a/+", "a", False),
    ("a/#", "a", True),           # '#' includes the parent level
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("#", "a/b", True),
    ("#", "/", True),
    ("+", "/", False),
    ("+/+", "/", True),
    ("/+", "/a", True),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("a/+/b", "a/b", False),
    ("#", "$SYS/x", False),       # [MQTT-4.7.2-1]
    ("+/x", "$SYS/x", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/+", "$SYS/x", True),
    ("a/$SYS/#", "a/$SYS/x", True),  # '$' matters only in the first level
    ("+/$x", "a/$x", True),
])
def test_matching_rules(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected
    trie: TopicTrie[str, int] = TopicTrie()
    trie.set(topic_filter, "k", 1)
    assert trie.match(topic) == ([("k", 1)] if expected else [])


def test_overlapping_subscriptions_of_one_key_are_all_reported() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    for qos, f in enumerate(["a/b", "a/+", "#"]):
        trie.set(f, "client", qos)
    trie.set("a/#", "other", 1)
    assert sorted(trie.match("a/b")) == [("client", 0), ("client", 1), ("client", 2),
                                         ("other", 1)]


def test_many_keys_under_one_filter() -> None:
    trie: TopicTrie[int, None] = TopicTrie()
    for key in range(100):
        trie.set("s/+", key, None)
    assert sorted(k for k, _ in trie.match("s/1")) == list(range(100))


def test_deep_topics_do_not_exhaust_the_stack() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    deep = "/".join(["+"] * 5000)
    trie.set(deep, "k", 1)
    trie.set(deep + "/#", "k2", 2)
    assert sorted(trie.match("/".join(["a"] * 5000))) == [("k", 1), ("k2", 2)]
    assert trie.remove(deep, "k") == 1
    assert [f for f, _, _ in trie.items()] == [deep + "/#"]


# ---------------------------------------------------------------------------------- bookkeeping

def test_set_reports_whether_the_key_is_new() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    assert trie.set("a/b", "k", 1) is True
    assert trie.set("a/b", "k", 2) is False  # replaced, not added
    assert trie.get("a/b", "k") == 2
    assert len(trie) == 1


def test_same_key_under_two_filters_counts_twice() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    trie.set("a/b", "k", 1)
    trie.set("a/+", "k", 1)
    assert len(trie) == 2


def test_get_and_remove_of_absent_entries_return_none() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    trie.set("a/b", "k", 1)
    assert trie.get("a", "k") is None
    assert trie.get("a/b/c", "k") is None
    assert trie.get("a/b", "other") is None
    assert trie.remove("a", "k") is None
    assert trie.remove("a/b/c", "k") is None
    assert trie.remove("a/b", "other") is None
    assert len(trie) == 1


def test_remove_prunes_empty_branches_only() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    trie.set("a/b/c", "k", 1)
    trie.set("a", "k", 2)
    assert trie.remove("a/b/c", "k") == 1
    assert trie._root.children["a"].children == {}
    assert trie.remove("a", "k") == 2
    assert trie._root.children == {}
    assert len(trie) == 0


def test_none_values_are_removed_and_counted() -> None:
    # A trie used as a set of (filter, key) stores None; removal must still count and prune.
    trie: TopicTrie[str, None] = TopicTrie()
    trie.set("a/b", "k", None)
    assert trie.remove("a/b", "k") is None
    assert len(trie) == 0
    assert list(trie.items()) == []
    assert trie._root.children == {}


def test_items_gives_back_the_filters() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    stored = {("a/b", "k", 1), ("/", "k", 2), ("", "j", 3), ("#", "k", 4), ("a//+", "j", 5),
              ("$SYS/#", "k", 6)}
    for f, key, value in stored:
        trie.set(f, key, value)
    assert set(trie.items()) == stored


class TrieMachine(RuleBasedStateMachine):
    """Random set/remove against a dict model; len, items, get, match and pruning agree."""

    def __init__(self) -> None:
        super().__init__()
        self.trie: TopicTrie[int, str] = TopicTrie()
        self.model: dict[tuple[str, int], str] = {}

    stored = Bundle("stored")

    @rule(target=stored, f=filters(), key=st.integers(0, 3), value=st.sampled_from("xyz"))
    def set(self, f: str, key: int, value: str) -> tuple[str, int]:
        assert self.trie.set(f, key, value) is ((f, key) not in self.model)
        self.model[f, key] = value
        return f, key

    @rule(entry=stored)
    def remove_stored(self, entry: tuple[str, int]) -> None:
        assert self.trie.remove(*entry) == self.model.pop(entry, None)

    @rule(f=filters(), key=st.integers(0, 3))
    def remove_any(self, f: str, key: int) -> None:
        assert self.trie.remove(f, key) == self.model.pop((f, key), None)

    @rule(f=filters(), key=st.integers(0, 3))
    def get(self, f: str, key: int) -> None:
        assert self.trie.get(f, key) == self.model.get((f, key))

    @rule(topic=topics)
    def match(self, topic: str) -> None:
        expected = Counter((k, v) for (f, k), v in self.model.items() if matches(f, topic))
        assert Counter(self.trie.match(topic)) == expected

    @invariant()
    def bookkeeping(self) -> None:
        assert len(self.trie) == len(self.model)
        assert sorted(self.trie.items()) == sorted((f, k, v) for (f, k), v in self.model.items())
        assert node_count(self.trie) == len(prefixes({f for f, _ in self.model}))


TestTrieMachine = TrieMachine.TestCase
TestTrieMachine.settings = settings(FAST, stateful_step_count=25)
