"""Topic names, topic filters and `$share/<group>/<filter>` parsing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given

from gateway.mqtt.topics import (
    SharedFilter,
    has_wildcard,
    parse_shared,
    topic_filter_error,
    topic_name_error,
)
from tests.mqtt.strategies import FAST, topic_filters, topic_names

# ---------------------------------------------------------------------------------- names


@pytest.mark.parametrize("topic", [
    "a", "a/b", "/", "/a", "a/", "a//b", "$SYS/broker/uptime", "$", " ", "é/日本", "a b",
    pytest.param("x" * 65_535, id="65535-bytes"),
])
def test_valid_topic_names(topic: str) -> None:
    assert topic_name_error(topic) is None


@pytest.mark.parametrize(("topic", "why"), [
    ("", "empty"),
    ("a/+", "wildcard"),
    ("a/#", "wildcard"),
    ("+", "wildcard"),
    ("a+b", "wildcard"),
    ("a#", "wildcard"),
    ("a\x00b", "U\\+0000"),
    ("a\ud800", "surrogate"),  # a str that cannot even be encoded
    pytest.param("x" * 65_536, "65535", id="65536-bytes"),
    pytest.param("é" * 32_768, "65535", id="65536-bytes-of-utf8"),
])
def test_invalid_topic_names(topic: str, why: str) -> None:
    error = topic_name_error(topic)
    assert error is not None
    assert re.search(why, error)


@FAST
@given(topic_names)
def test_generated_topic_names_are_valid(topic: str) -> None:
    assert topic_name_error(topic) is None
    assert not has_wildcard(topic)


# ---------------------------------------------------------------------------------- filters

@pytest.mark.parametrize("topic_filter", [
    "#", "+", "a", "a/#", "a/+", "+/+", "+/a/#", "/", "/#", "//", "a//+", "$SYS/#",
    "$share/g/a", "+/#", "a/b/c/d/e/f",
])
def test_valid_topic_filters(topic_filter: str) -> None:
    assert topic_filter_error(topic_filter) is None


@pytest.mark.parametrize("topic_filter", [
    "", "a/#/b", "#/a", "a#", "#a", "##", "a/b#", "a+", "+a", "a/+b", "++", "a\x00", "a/\udfff",
    pytest.param("x" * 65_536, id="65536-bytes"),
])
def test_invalid_topic_filters(topic_filter: str) -> None:
    assert topic_filter_error(topic_filter) is not None


@FAST
@given(topic_filters())
def test_generated_topic_filters_are_valid(topic_filter: str) -> None:
    assert topic_filter_error(topic_filter) is None


def test_has_wildcard() -> None:
    assert has_wildcard("a/+")
    assert has_wildcard("#")
    assert not has_wildcard("a/b")


# ---------------------------------------------------------------------------------- $share

@pytest.mark.parametrize(("topic_filter", "expected"), [
    ("$share/g/a/b", SharedFilter("g", "a/b")),
    ("$share/g/#", SharedFilter("g", "#")),
    ("$share/g/+/x", SharedFilter("g", "+/x")),
    ("$share/group-1/$SYS/x", SharedFilter("group-1", "$SYS/x")),
    ("$share/g//", SharedFilter("g", "/")),
])
def test_shared_filters_are_split(topic_filter: str, expected: SharedFilter) -> None:
    assert parse_shared(topic_filter) == expected


@pytest.mark.parametrize("topic_filter", ["a/b", "#", "$SYS/x", "$SHARE/g/a", "$sharegroup/a",
                                          "share/g/a", "$queue/a"])
def test_other_filters_are_not_shared(topic_filter: str) -> None:
    assert parse_shared(topic_filter) is None


@pytest.mark.parametrize("topic_filter", [
    "$share/",          # no group
    "$share//a",        # empty group
    "$share/g",         # no filter
    "$share/g/",        # empty filter
    "$share/g+/a",      # wildcard in the group
    "$share/#/a",
    "$share/+/a",
    "$share/g/a#",      # invalid filter
    "$share/g/a/#/b",
])
def test_bad_shared_filters_raise_value_error(topic_filter: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_shared(topic_filter)
    assert str(err.value)
