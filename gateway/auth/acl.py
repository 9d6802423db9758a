"""The ACL file: who may publish, subscribe and consume queues, modelled on Mosquitto's acl_file.

    # Lines before the first `user` apply to anonymous clients (no user name).
    topic read public/#

    user alice
    topic readwrite sensors/#          # access: read | write | readwrite (default) | deny
    queue consume orders               # a queue by name ($queue/orders) ...
    queue consume sensors/+/alerts     # ... or by the filter it is bound to ($q/sensors/+/alerts)
    queue create alice/jobs/#          # may create queues bound inside alice/jobs/# by subscribing

    # `pattern` lines apply to every client, with %u = user name and %c = client id.
    pattern write devices/%c/state
    pattern consume lights/%c/commands # consume: queue consumption

Decisions:

* with an ACL file, everything not granted is refused; `deny` wins over any grant;
* publish needs a `write`/`readwrite` rule matching the topic;
* subscribe needs a `read`/`readwrite` rule covering the whole filter (`sensors/#` covers
  `sensors/+/temp`, not the reverse) and no `deny` covering it. A `deny` that covers only part
  of a granted filter leaves the subscription allowed; every delivery is checked with
  `can_receive()`, so the denied topics are never sent;
* consuming a queue (`$q/…`, `$queue/…`) needs a `queue consume` rule for the queue (by name or
  by the filter it is bound to) *and* a `read` rule covering the filter the queue is bound to:
  a queue never lets a client read what it could not subscribe to;
* creating a queue by subscribing (`$queue/<name>/<filter>`) needs `queue create` covering the
  filter, and read access to it; without an ACL file nobody creates queues that way;
* a pattern is skipped for a client whose substituted name contains `/`, `+` or `#` (no wildcard
  injection through a client id), and `%u` patterns are skipped for anonymous clients.

Decisions are cached per (operation, user, client id, topic) until `reload()`. Errors name the
file, the line and the fix. This module reads a file and answers questions; it sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.mqtt.topics import covers

TOPIC_ACCESS = ("read", "write", "readwrite", "deny")
QUEUE_ACCESS = ("consume", "create", "deny")
CACHE_LIMIT = 100_000
_READ = ("read", "readwrite")
_WRITE = ("write", "readwrite")
_UNSAFE_IN_NAMES = ("/", "+", "#")


class AclError(ValueError):
    """The ACL file is unreadable or malformed; the message names file, line and fix."""


@dataclass(frozen=True)
class Rule:
    """One grant or denial: `kind` is "topic" or "queue"; `target` a filter or queue name."""

    kind: str
    access: str
    target: str
    pattern: bool = False


@dataclass(frozen=True)
class AclRules:
    """The parsed file: rules for anonymous clients, per user, and patterns for everyone."""

    anonymous: tuple[Rule, ...] = ()
    users: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    patterns: tuple[Rule, ...] = ()


# --- parsing ---------------------------------------------------------------------------------

def parse_acl(text: str, source: str = "<acl>") -> AclRules:
    """Parse ACL text; raises `AclError("<source>:<line>: ...")` on the first bad line."""
    anonymous: list[Rule] = []
    users: dict[str, list[Rule]] = {}
    patterns: list[Rule] = []
    section = anonymous
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        where = f"{source}:{number}"
        if keyword == "user":
            if not rest:
                raise AclError(f"{where}: 'user' needs a user name, e.g. 'user alice'")
            section = users.setdefault(rest, [])
        elif keyword == "topic":
            section.append(_parse_rule("topic", rest, TOPIC_ACCESS, where))
        elif keyword == "queue":
            section.append(_parse_rule("queue", rest, QUEUE_ACCESS, where))
        elif keyword == "pattern":
            patterns.append(_parse_pattern(rest, where))
        else:
            raise AclError(f"{where}: unknown keyword {keyword!r}; lines start with 'user', "
                           "'topic', 'queue' or 'pattern' ('#' starts a comment)")
    return AclRules(tuple(anonymous), {u: tuple(rs) for u, rs in users.items()}, tuple(patterns))


def _parse_rule(kind: str, rest: str, accesses: tuple[str, ...], where: str) -> Rule:
    first, _, target = rest.partition(" ")
    target = target.strip()
    if first in accesses:
        access = first
    elif kind == "topic" and not target and first not in QUEUE_ACCESS:
        access, target = "readwrite", first  # mosquitto: a lone `topic FILTER` is readwrite
    else:
        example = f"{kind} {accesses[0]} {target or first}"
        raise AclError(f"{where}: the access of a {kind!r} line is {' | '.join(accesses)}, "
                       f"not {first!r}; e.g. '{example}'")
    if not target:
        raise AclError(f"{where}: '{kind} {access}' needs a {_what(kind)} after it, "
                       f"e.g. '{kind} {access} sensors/#'")
    problem = filter_error(target)
    if problem:
        raise AclError(f"{where}: bad {_what(kind)} {target!r}: {problem}")
    return Rule(kind, access, target)


def _parse_pattern(rest: str, where: str) -> Rule:
    """`pattern consume X` and `pattern create X` are queue rules, any other a topic rule."""
    if rest.partition(" ")[0] in ("consume", "create"):
        rule = _parse_rule("queue", rest, ("consume", "create"), where)
    else:
        rule = _parse_rule("topic", rest, TOPIC_ACCESS, where)
    return Rule(rule.kind, rule.access, rule.target, pattern=True)


def filter_error(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a valid MQTT topic filter in an ACL rule, or None if it is.
    (Its own wording, and no string-length checks: `gateway.mqtt.topics.topic_filter_error` is
    the rule for packets.)"""
    if not topic_filter:
        return "empty topic filter"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level, and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def _what(kind: str) -> str:
    return "topic filter" if kind == "topic" else "queue name or filter"


def load_acl_rules(path: Path | str) -> AclRules:
    """Read and parse the ACL file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AclError(f"{path}: cannot read the ACL file: {exc}") from exc
    return parse_acl(text, str(path))


# --- decisions -------------------------------------------------------------------------------

class Acl:
    """Cached access decisions over an ACL file, or allow-all when there is no file."""

    def __init__(self, rules: AclRules | None, path: Path | str | None = None) -> None:
        """`rules=None` allows everything (no acl_file configured). Prefer `load_acl()`."""
        self.path = Path(path) if path else None
        self._rules = rules
        self._cache: dict[tuple[str, str | None, str, str], bool] = {}

    @classmethod
    def allow_all(cls) -> Acl:
        """No ACL file: every operation is allowed (Mosquitto's behaviour without acl_file)."""
        return cls(None)

    @property
    def enforced(self) -> bool:
        """False without an ACL file: then every topic operation is allowed."""
        return self._rules is not None

    def reload(self) -> None:
        """Re-read the file and forget cached decisions. On error the old rules stay in force
        and `AclError` propagates."""
        if self.path is None:
            return
        self._rules = load_acl_rules(self.path)
        self._cache.clear()

    def can_publish(self, username: str | None, client_id: str, topic: str) -> bool:
        """May this client PUBLISH to `topic`? (Else PUBACK/PUBREC 0x87 in 5.0.)"""
        return self._decide("publish", username, client_id, topic)

    def can_receive(self, username: str | None, client_id: str, topic: str) -> bool:
        """May this client be sent a message on `topic` (from a subscription or a queue)?"""
        return self._decide("receive", username, client_id, topic)

    def can_read_queue_filter(self, username: str | None, client_id: str,
                              topic_filter: str) -> bool:
        """May a consumer read the messages a queue takes in through `topic_filter`? The same
        `read` grant a subscription to that filter needs."""
        return self._decide("subscribe", username, client_id, topic_filter)

    def can_create_queue(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        """May this client create a queue bound to `topic_filter` by subscribing? Never
        without an ACL file (queues are then made in the config, the CLI or the admin API)."""
        if self._rules is None:
            return False
        return (self._decide("create", username, client_id, topic_filter)
                and self.can_read_queue_filter(username, client_id, topic_filter))

    def can_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        """May this client SUBSCRIBE to `topic_filter`? (Else SUBACK 0x87 in 5.0, 0x80 in 3.1.1.)

        `$share/<group>/<filter>` is checked as `<filter>`; `$q/<filter>` and
        `$queue/<name>[/<filter>]` are checked with `can_consume(<filter>)` / `(<name>)`."""
        if topic_filter.startswith("$share/"):
            topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
        if topic_filter.startswith(("$q/", "$queue/")):
            return self.can_consume(username, client_id, topic_filter)
        return self._decide("subscribe", username, client_id, topic_filter)

    def can_consume(self, username: str | None, client_id: str, queue: str) -> bool:
        """May this client consume the queue named `queue` (or bound to filter `queue`)?

        The consumer's subscription filter works too: `$q/<filter>` means `<filter>`,
        `$queue/<name>[/<filter>]` means `<name>`."""
        return self._decide("consume", username, client_id, queue_identity(queue))

    def _decide(self, op: str, username: str | None, client_id: str, target: str) -> bool:
        if self._rules is None:
            return True
        key = (op, username, client_id, target)
        decision = self._cache.get(key)
        if decision is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            rules = _rules_for(self._rules, username, client_id)
            decision = self._cache[key] = _evaluate(op, rules, target)
        return decision


def queue_identity(subscription: str) -> str:
    """What `queue` rules are matched against: the filter of `$q/<filter>`, the name of
    `$queue/<name>[/<filter>]` (`$dlq/<name>` for a dead-letter queue); anything else is
    already a queue name or filter."""
    if subscription.startswith("$q/"):
        return subscription[3:]
    if subscription.startswith("$queue/$dlq/"):  # a dead-letter queue: `$dlq/<name>`
        return subscription[7:]
    if subscription.startswith("$queue/"):
        return subscription[7:].split("/", 1)[0]
    return subscription


def load_acl(path: Path | str | None) -> Acl:
    """The `Acl` for the `[auth] acl_file` setting: allow-all when empty or None."""
    if not path:
        return Acl.allow_all()
    return Acl(load_acl_rules(path), path)


def _rules_for(rules: AclRules, username: str | None, client_id: str) -> list[Rule]:
    """The rules that apply to one client, with its patterns substituted."""
    own = rules.anonymous if username is None else rules.users.get(username, ())
    applied = list(own)
    for rule in rules.patterns:
        target = _substitute(rule.target, username, client_id)
        if target is not None:
            applied.append(Rule(rule.kind, rule.access, target, pattern=True))
    return applied


def _substitute(target: str, username: str | None, client_id: str) -> str | None:
    """`target` with %u and %c replaced, or None when the pattern must not apply."""
    if "%u" in target:
        if username is None or not _safe(username):
            return None
        target = target.replace("%u", username)
    if "%c" in target:
        if not _safe(client_id):
            return None
        target = target.replace("%c", client_id)
    return target


def _safe(name: str) -> bool:
    return bool(name) and not any(ch in name for ch in _UNSAFE_IN_NAMES)


_GRANTS = {"publish": _WRITE, "subscribe": _READ, "receive": _READ, "consume": ("consume",),
           "create": ("create",)}


def _evaluate(op: str, rules: list[Rule], target: str) -> bool:
    kind = "queue" if op in ("consume", "create") else "topic"
    grants = _GRANTS[op]
    relevant = [r for r in rules if r.kind == kind]
    if any(r.access == "deny" and covers(r.target, target) for r in relevant):
        return False
    return any(r.access in grants and covers(r.target, target) for r in relevant)
