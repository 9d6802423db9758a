"""Queue names and consumer topic filters: `$q/<filter>`, `$queue/<name>[/<filter>]`, `.dlq`.

- `$q/<filter>`: the queue bound to exactly that filter string; for a concrete topic that a
  template queue's filter matches, that topic's instance queue.
- `$queue/<name>`: the queue of that name (names may contain `/` when they default to the
  filter, so the whole rest is tried as a name first).
- `$queue/<name>/<filter>` (EMQX 6.1+): queue <name> bound to <filter>, created at run time
  when it does not exist.

Every queue that can dead-letter has a dead-letter queue named `$dlq/<name>` (`$dlq/orders`,
`$dlq/images/+`), consumed with `$queue/$dlq/<name>`. The `$dlq/` namespace is reserved: a
queue name cannot start with `$` and a queue filter cannot start with `$dlq/`, so no queue can
take a dead-letter queue's name. Instances of a template share the template's dead-letter
queue. `$SYS/broker/queues/<name>/...` spells wildcard levels out (`images/+` ->
`images/any`), since a PUBLISH topic name must not contain wildcards.
"""

from __future__ import annotations

Q_PREFIX = "$q/"
QUEUE_PREFIX = "$queue/"
DLQ_PREFIX = "$dlq/"
RESERVED_FILTER_PREFIXES = (Q_PREFIX, QUEUE_PREFIX, "$share/", DLQ_PREFIX)


def is_queue_filter(topic_filter: str) -> bool:
    return topic_filter.startswith((Q_PREFIX, QUEUE_PREFIX))


def dead_letter_name(queue_name: str) -> str:
    """`orders` -> `$dlq/orders`; `images/+` -> `$dlq/images/+`."""
    return DLQ_PREFIX + queue_name


def spelled_out(queue_name: str) -> str:
    """A queue name usable inside a topic name: wildcard levels spelled out (`images/+` ->
    `images/any`, `a/#` -> `a/all`), as in `$SYS/broker/queues/...`."""
    levels = ["any" if level == "+" else "all" if level == "#" else level
              for level in queue_name.split("/")]
    return "/".join(levels)


def split_named(rest: str) -> tuple[str, str] | None:
    """`orders/images/+` -> (`orders`, `images/+`); None without a filter part."""
    name, sep, topic_filter = rest.partition("/")
    if not sep or not name or not topic_filter:
        return None
    return name, topic_filter
