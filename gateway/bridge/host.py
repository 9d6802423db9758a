"""What a bridge needs of the broker it runs in: the narrow side of the broker the bridge owns.

The bridge publishes what comes down from the upstream through the broker's one publish path,
waits for room in a full `block` queue and for commits, consumes its outbox queues from the
queue engine, and reads the clock and the config. `gateway.broker.server.Broker` satisfies
this protocol; the bridge never imports the broker, so the broker can stay below it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.config import Config
from gateway.messages import Message, PublishResult
from gateway.queues.engine import QueueEngine
from gateway.store.committer import Committer


class Host(Protocol):
    @property
    def config(self) -> Config:
        """The running config (replaced on reload)."""

    @property
    def clock(self) -> Callable[[], float]:
        """Wall-clock time, as the broker stamps messages."""

    @property
    def engine(self) -> QueueEngine:
        """The queue engine holding the outbox queues."""

    @property
    def committer(self) -> Committer:
        """The store's group committer (`on_commit` before acknowledging upstream)."""

    @property
    def overloaded(self) -> bool:
        """Whether the memory budget is exceeded (producers wait)."""

    def publish(self, message: Message) -> PublishResult:
        """Enqueue, retain and deliver one accepted message."""
