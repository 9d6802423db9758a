"""Durable message queues: the engine, dispatch strategies, last-value keys and limits.

The engine knows nothing of sockets or the event loop: the broker hands it messages and
consumers (objects with `queue_capacity()` and `queue_deliver()`), and it hands back decisions.
Storage is `gateway.store.queues` (SQLite through the group-commit writer). See docs/queues.md.
"""

from gateway.queues.engine import QueueEngine
from gateway.queues.model import Consumer, Delivery, PublishOutcome, QueueError, QueueStats
from gateway.queues.naming import dead_letter_name, is_queue_filter

__all__ = ["Consumer", "Delivery", "PublishOutcome", "QueueEngine", "QueueError", "QueueStats",
           "dead_letter_name", "is_queue_filter"]
