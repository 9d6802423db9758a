"""Durable message queues: the engine, dispatch strategies and limits.

The engine knows nothing of sockets or the event loop: the broker hands it messages and
consumers (objects with `queue_capacity()` and `queue_deliver()`), and it hands back decisions.
Storage is `gateway.store.queues` (SQLite through the group-commit writer). Last-value key
expressions (`gateway.lastvalue`) and queue names (`gateway.queuenames`) sit below the config,
which checks them. See docs/queues.md.
"""

from gateway.queuenames import dead_letter_name, is_queue_filter
from gateway.queues.engine import QueueEngine
from gateway.queues.model import Consumer, Delivery, PublishOutcome, QueueError, QueueStats

__all__ = ["Consumer", "Delivery", "PublishOutcome", "QueueEngine", "QueueError", "QueueStats",
           "dead_letter_name", "is_queue_filter"]
