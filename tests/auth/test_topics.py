"""Topic rules the ACL uses: MQTT wildcard matching and `covers` as filter containment (the one
matcher, in gateway.mqtt.topics), and the ACL's own filter check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.acl import filter_error
from gateway.mqtt.topics import covers, matches


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("sensors/+/temp", "sensors/kitchen/temp", True),
    ("sensors/+/temp", "sensors/kitchen/hall/temp", False),
    ("sensors/#", "sensors", True),  # '#' also matches the parent level
    ("sensors/#", "sensors/a/b/c", True),
    ("#", "$SYS/broker/uptime", False),  # no leading wildcard for $-topics
    ("+/broker/uptime", "$SYS/broker/uptime", False),
    ("$SYS/#", "$SYS/broker/uptime", True),
    ("a/b", "a/b/c", False),
])
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(("outer", "inner", "expected"), [
    ("sensors/#", "sensors/+/temp", True),
    ("sensors/+/temp", "sensors/#", False),
    ("sensors/+", "sensors/+", True),
    ("sensors/+", "sensors/#", False),
    ("#", "$SYS/#", False),
    ("$SYS/#", "$SYS/+/uptime", True),
])
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b"])
def test_filter_error(bad: str) -> None:
    assert filter_error(bad) is not None


levels = st.sampled_from(["a", "b", "$x"])
filter_levels = st.sampled_from(["a", "b", "$x", "+"])
topics = st.lists(levels, min_size=1, max_size=4).map("/".join)
filters = st.builds(lambda ls, hash_: "/".join(ls + ["#"] * hash_),
                    st.lists(filter_levels, min_size=0, max_size=4), st.booleans()
                    ).filter(bool)


@given(filters, filters, topics)
def test_covers_means_every_matching_topic_matches(outer: str, inner: str, topic: str) -> None:
    if covers(outer, inner) and matches(inner, topic):
        assert matches(outer, topic)
