"""Queue names and consumer topic filters: `$q/<filter>`, `$queue/<name>[/<filter>]`, `.dlq`.

- `$q/<filter>`: the queue bound to exactly that filter string; for a concrete topic that a
  template queue's filter matches, that topic's instance queue.
- `$queue/<name>`: the queue of that name (names may contain `/` when they default to the
  filter, so the whole rest is tried as a name first).
- `$queue/<name>/<filter>` (EMQX 6.1+): queue <name> bound to <filter>, created at run time
  when it does not exist.

Every queue that can dead-letter has a dead-letter queue named `<name>.dlq`. A name that is a
topic filter has its wildcard levels spelled out so that the result is still a valid topic
filter to subscribe to: `images/+` -> `images/any.dlq`, `sensors/#` -> `sensors/all.dlq`.
Instances of a template share the template's dead-letter queue. `$SYS/broker/queues/<name>/...`
spells the name out the same way, since a PUBLISH topic name must not contain wildcards.
"""

from __future__ import annotations

Q_PREFIX = "$q/"
QUEUE_PREFIX = "$queue/"
DLQ_SUFFIX = ".dlq"


def is_queue_filter(topic_filter: str) -> bool:
    return topic_filter.startswith((Q_PREFIX, QUEUE_PREFIX))


def dead_letter_name(queue_name: str) -> str:
    """`orders` -> `orders.dlq`; `images/+` -> `images/any.dlq`; `a/#` -> `a/all.dlq`."""
    return spelled_out(queue_name) + DLQ_SUFFIX


def spelled_out(queue_name: str) -> str:
    """A queue name usable inside a topic name: wildcard levels spelled out (`images/+` ->
    `images/any`, `a/#` -> `a/all`), as in dead-letter names and `$SYS/broker/queues/...`."""
    levels = ["any" if level == "+" else "all" if level == "#" else level
              for level in queue_name.split("/")]
    return "/".join(levels)


def split_named(rest: str) -> tuple[str, str] | None:
    """`orders/images/+` -> (`orders`, `images/+`); None without a filter part."""
    name, sep, topic_filter = rest.partition("/")
    if not sep or not name or not topic_filter:
        return None
    return name, topic_filter
