"""What the benchmark measures about a broker process, read from /proc, and latency statistics.

CPU is utime+stime of /proc/PID/stat (all threads of the process) plus that of its live
descendants; memory is VmRSS/VmHWM of /proc/PID/status. Nothing here starts or talks to a broker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int, tid: int | None = None) -> list[str]:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    raw = Path(path).read_text()
    # The command name is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime of one process, all its threads included."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def main_thread_cpu_seconds(pid: int) -> float:
    """utime+stime of the process's first thread only (edgeq: the event loop)."""
    fields = _stat_fields(pid, pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Live child processes of `pid`, recursively."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    total = cpu_seconds(pid)
    for child in descendants(pid):
        try:
            total += cpu_seconds(child)
        except OSError:
            continue
    return total


def status_kib(pid: int, key: str) -> int:
    """A `Vm*` line of /proc/PID/status in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


@dataclass(frozen=True, slots=True)
class Sample:
    """A broker process at one instant."""

    wall: float
    cpu: float
    main_cpu: float  # of that, the main thread's
    rss_kib: int
    hwm_kib: int


def sample(pid: int) -> Sample:
    return Sample(time.monotonic(), tree_cpu_seconds(pid), main_thread_cpu_seconds(pid),
                  status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"))


@dataclass(frozen=True, slots=True)
class Window:
    """Two samples around a measured interval."""

    start: Sample
    end: Sample

    @property
    def seconds(self) -> float:
        return self.end.wall - self.start.wall

    @property
    def cpu(self) -> float:
        return self.end.cpu - self.start.cpu

    @property
    def other_threads_cpu(self) -> float:
        """CPU seconds of every thread but the main one (edgeq: the SQLite writer)."""
        return self.cpu - (self.end.main_cpu - self.start.main_cpu)

    def cpu_us_per(self, count: int) -> float | None:
        return self.cpu / count * 1e6 if count else None


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        raise ValueError("no values")
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def latency_ms(latencies_ns: Iterable[int]) -> tuple[float, float] | None:
    """(p50, p99) in milliseconds, or None without values."""
    values = sorted(latencies_ns)
    if not values:
        return None
    return percentile(values, 50) / 1e6, percentile(values, 99) / 1e6
