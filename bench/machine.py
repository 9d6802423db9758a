"""The machine a run came from, and whether something else was keeping it busy."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

from bench.brokers import REPO


def _cpu_times() -> tuple[int, int]:
    """(total, idle+iowait) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of all CPUs in use over `seconds` (call it while the benchmark itself is idle)."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews msg/s."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _command_line(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def describe() -> dict[str, str]:
    """What a reader needs to compare this run with another one."""
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} CPUs",
        "memory": f"{_mem_total_gib():.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "mosquitto": _command_line(["mosquitto", "-h"]),
        "edgeq commit": _command_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }
