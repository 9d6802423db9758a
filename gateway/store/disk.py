"""Disk as a budget: how much the store uses, how much the file system has left, and whether
QoS 1/2 publishes must be refused because the next stored message might not fit.

Measured once a second (`check`, from the broker's tick) on the writer thread: the database's
live pages (page count minus free pages, so rows deleted by consumers count as freed at once)
and the free space of its file system. Between two measurements the bytes the stores have
written since (`Committer.bytes_written`) are added, doubled for indexes and page slack, so a
burst cannot run far past the limit before the next measurement. Full when live bytes reach
`storage.max_disk_bytes` (0: no limit) or free space falls below `storage.min_free_bytes`;
service resumes by itself once both are 2 % clear again. The WAL journal is not counted: it is
bounded by the auto-checkpoint (about 16 MiB) and reused, not grown.
"""

from __future__ import annotations

import logging
import os
import sqlite3

from gateway.store.committer import Committer

log = logging.getLogger(__name__)
SLACK = 2  # bytes on disk per byte of message written, until the next measurement
HYSTERESIS = 0.02  # of the limit: how far below it a full store must get to resume


class DiskBudget:
    """The store's disk budget; `refuses()` is asked by the publish path."""

    def __init__(self, committer: Committer, max_bytes: int, min_free: int) -> None:
        self._c = committer
        self.max_bytes = max_bytes
        self.min_free = min_free
        self.used = 0  # live bytes of the database at the last measurement
        self.free = 0  # free bytes of its file system at the last measurement
        self._written_at = 0  # committer.bytes_written at the last measurement
        self.full = False
        self.refused = 0
        self._measuring = False

    @property
    def enabled(self) -> bool:
        return bool(self.max_bytes or self.min_free)

    def refuses(self) -> bool:
        """Whether a QoS 1/2 publish must be refused now (counted when it is)."""
        if not self.enabled:
            return False
        if not self.full:
            extra = (self._c.bytes_written - self._written_at) * SLACK
            if not self._over(self.used + extra, self.free - extra, 0.0):
                return False
            self._set_full(True)
        self.refused += 1
        return True

    def start(self) -> None:
        """The first measurement, at start-up before serving (synchronous)."""
        if self.enabled:
            self._measured(self._c.bytes_written, _measure(self._c.connection))

    def check(self) -> None:
        """Measure again (on the writer thread, after the writes submitted before)."""
        if not self.enabled or self._measuring:
            return
        self._measuring = True
        written = self._c.bytes_written
        self._c.read(_measure, lambda m: self._measured(written, m))

    def _measured(self, written: int, measurement: tuple[int, int]) -> None:
        self._measuring = False
        self.used, self.free = measurement
        self._written_at = written
        margin = HYSTERESIS if self.full else 0.0
        self._set_full(self._over(self.used, self.free, margin))

    def _over(self, used: int, free: int, margin: float) -> bool:
        return ((self.max_bytes > 0 and used >= self.max_bytes * (1 - margin))
                or (self.min_free > 0 and free < self.min_free * (1 + margin)))

    def _set_full(self, full: bool) -> None:
        if full == self.full:
            return
        self.full = full
        if full:
            log.warning("store at its disk budget (%d bytes used of %s, %d bytes free, %s "
                        "kept free): refusing QoS 1/2 publishes until space is freed",
                        self.used, self.max_bytes or "unlimited", self.free, self.min_free,
                        extra={"REASON": "disk budget"})
        else:
            log.warning("store below its disk budget again (%d bytes used, %d free): accepting "
                        "QoS 1/2 publishes; %d were refused so far", self.used, self.free,
                        self.refused, extra={"REASON": "disk budget"})


def _measure(conn: sqlite3.Connection) -> tuple[int, int]:
    """(live bytes of the database, free bytes of its file system)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    unused = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    stat = os.statvfs(os.path.dirname(path) or ".")
    return (pages - unused) * size, stat.f_bavail * stat.f_frsize
