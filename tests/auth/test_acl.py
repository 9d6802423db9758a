"""The ACL file: Mosquitto's acl_file format plus `queue` rules for `$q/` and `$queue/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth.acl import Acl, AclError, load_acl, parse_acl

EXAMPLE = """\
# anonymous clients may only read public topics
topic read public/#

user alice
topic readwrite sensors/#
topic deny sensors/secret
queue consume orders
queue consume alerts/+

user bob
topic write sensors/+/temp

pattern write devices/%c/state
pattern read users/%u/#
pattern consume lights/%c/commands
"""


@pytest.fixture
def acl() -> Acl:
    return Acl(parse_acl(EXAMPLE))


def test_anonymous_clients_get_the_lines_before_the_first_user(acl: Acl) -> None:
    assert acl.can_subscribe(None, "c1", "public/news")
    assert not acl.can_publish(None, "c1", "public/news")
    assert not acl.can_subscribe(None, "c1", "sensors/#")


def test_user_sections(acl: Acl) -> None:
    assert acl.can_publish("alice", "c1", "sensors/kitchen/temp")
    assert acl.can_subscribe("alice", "c1", "sensors/+/temp")
    assert acl.can_publish("bob", "c2", "sensors/kitchen/temp")
    assert not acl.can_publish("bob", "c2", "sensors/kitchen/humidity")
    assert not acl.can_subscribe("bob", "c2", "sensors/kitchen/temp")  # write only
    assert not acl.can_publish("carol", "c3", "sensors/kitchen/temp")  # not in the file


def test_a_subscription_must_be_covered_entirely(acl: Acl) -> None:
    assert acl.can_subscribe("alice", "c1", "sensors/#")
    assert not acl.can_subscribe("bob", "c1", "sensors/#")
    assert not acl.can_subscribe("alice", "c1", "#")


def test_deny_wins_and_is_checked_per_message(acl: Acl) -> None:
    assert not acl.can_publish("alice", "c1", "sensors/secret")
    assert not acl.can_subscribe("alice", "c1", "sensors/secret")
    assert acl.enforced
    assert not acl.can_receive("alice", "c1", "sensors/secret")
    assert acl.can_receive("alice", "c1", "sensors/kitchen/temp")


def test_patterns_substitute_client_id_and_user_name(acl: Acl) -> None:
    assert acl.can_publish("bob", "light-1", "devices/light-1/state")
    assert not acl.can_publish("bob", "light-1", "devices/light-2/state")
    assert acl.can_publish(None, "light-1", "devices/light-1/state")
    assert acl.can_subscribe("carol", "x", "users/carol/inbox")
    assert not acl.can_subscribe(None, "x", "users/%u/inbox")  # %u never applies to anonymous


def test_wildcards_in_names_do_not_widen_a_pattern(acl: Acl) -> None:
    assert not acl.can_publish(None, "#", "devices/light-1/state")
    assert not acl.can_publish(None, "light-1/x", "devices/light-1/x/state")


def test_queue_consumption(acl: Acl) -> None:
    assert acl.can_consume("alice", "w1", "orders")
    assert acl.can_consume("alice", "w1", "$queue/orders")  # the subscription filter works too
    assert acl.can_subscribe("alice", "w1", "$queue/orders")
    assert acl.can_subscribe("alice", "w1", "$queue/orders/eu/#")
    assert acl.can_subscribe("alice", "w1", "$q/alerts/+")
    assert not acl.can_subscribe("alice", "w1", "$q/sensors/#")  # topic read is not consume
    assert acl.can_subscribe("bob", "light-1", "$q/lights/light-1/commands")
    assert not acl.can_subscribe("bob", "light-1", "$q/lights/light-2/commands")


def test_shared_subscriptions_are_checked_on_their_filter(acl: Acl) -> None:
    assert acl.can_subscribe("alice", "c1", "$share/workers/sensors/#")
    assert not acl.can_subscribe("bob", "c1", "$share/workers/sensors/#")


def test_no_acl_file_allows_everything() -> None:
    acl = load_acl("")
    assert acl.can_publish(None, "c", "any/topic")
    assert acl.can_subscribe(None, "c", "#")
    assert acl.can_consume(None, "c", "orders")
    assert not acl.enforced
    assert not acl.can_create_queue(None, "c", "any/#")  # queues come from the config then


def test_queue_reading_and_creation() -> None:
    acl = Acl(parse_acl("""\
user alice
topic read orders/#
queue consume orders
queue consume alerts/+
queue create jobs/#
topic read jobs/#
topic deny jobs/secret/#
"""))
    assert acl.can_read_queue_filter("alice", "c", "orders/#")
    assert not acl.can_consume("alice", "c", "$queue/$dlq/orders")  # dead letters: own grant
    assert not acl.can_read_queue_filter("alice", "c", "alerts/+")  # consume is not read
    assert not acl.can_read_queue_filter("alice", "c", "sensors/#")
    assert acl.can_create_queue("alice", "c", "jobs/eu/#")
    assert not acl.can_create_queue("alice", "c", "jobs/secret/#")
    assert not acl.can_create_queue("alice", "c", "#")


def test_topic_without_access_means_readwrite() -> None:
    acl = Acl(parse_acl("topic sensors/#\n"))
    assert acl.can_publish(None, "c", "sensors/a")
    assert acl.can_subscribe(None, "c", "sensors/a")


def test_reload_applies_the_new_file_and_keeps_the_old_one_on_error(tmp_path: Path) -> None:
    path = tmp_path / "acl"
    path.write_text("topic read a/#\n")
    acl = load_acl(path)
    assert acl.can_subscribe(None, "c", "a/b")  # cached now
    path.write_text("topic read b/#\n")
    acl.reload()
    assert not acl.can_subscribe(None, "c", "a/b")
    assert acl.can_subscribe(None, "c", "b/c")
    path.write_text("topic reed b/#\n")
    with pytest.raises(AclError):
        acl.reload()
    assert acl.can_subscribe(None, "c", "b/c")


@pytest.mark.parametrize(("line", "message"), [
    ("topik read a", "acl:2: unknown keyword 'topik'; lines start with 'user', 'topic'"),
    ("topic read", "acl:2: 'topic read' needs a topic filter after it"),
    ("topic read a/#/b", "acl:2: bad topic filter 'a/#/b': '#' must be a whole level"),
    ("queue orders", "acl:2: the access of a 'queue' line is consume | create | deny, not "
                     "'orders'; e.g. 'queue consume orders'"),
    ("queue read orders", "acl:2: the access of a 'queue' line is consume | create | deny, "
                          "not 'read'"),
    ("user", "acl:2: 'user' needs a user name"),
])
def test_errors_name_file_line_and_fix(line: str, message: str) -> None:
    with pytest.raises(AclError) as err:
        parse_acl(f"# comment\n{line}\n", "acl")
    assert str(err.value).startswith(message)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(AclError, match="cannot read the ACL file"):
        load_acl(tmp_path / "missing")


def test_a_misspelt_access_is_an_error_not_a_topic_with_a_space() -> None:
    with pytest.raises(AclError) as err:
        parse_acl("topic reed sensors/#\n", "acl")
    assert str(err.value).startswith(
        "acl:1: the access of a 'topic' line is read | write | readwrite | deny, not 'reed'")
