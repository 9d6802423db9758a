"""Where edgeq's time goes: py-spy attached to the broker for a scenario, and a summary.

`python -m bench --profile ...` records each edgeq broker with `py-spy record --nonblocking`
(sampling without pausing the process) into collapsed stacks, then ranks functions by self
time (the leaf frame of a sample) and by inclusive time (anywhere on the stack). py-spy is not a
project dependency: install it into the venv (`.venv/bin/pip install py-spy`) to profile.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 200  # samples per second
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy recording one process until `stop()`."""

    def __init__(self, pid: int, out: Path) -> None:
        binary = py_spy()
        if binary is None:
            raise FileNotFoundError("py-spy not found: .venv/bin/pip install py-spy")
        self.out = out
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", str(RATE),
             "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _frame(raw: str) -> str:
    """'handle (gateway/broker/x.py:42)' -> 'handle (gateway/broker/x.py)'."""
    name = _LINE.sub(")", raw.strip())
    return name.replace(str(Path(sys.prefix)), "venv").replace(str(Path.cwd()) + "/", "")


def summarize(path: Path, top: int = 15) -> str:
    """The `top` functions by self and by inclusive share of samples."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    per_root: Counter[str] = Counter()  # samples per outermost frame (one per thread kind)
    root_of: dict[str, Counter[str]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        self_time[frames[-1]] += count
        per_root[frames[0]] += count
        for name in set(frames):
            inclusive[name] += count
            root_of.setdefault(name, Counter())[frames[0]] += count
    if not total:
        return f"{path.name}: no samples"

    def wraps_a_thread(name: str) -> bool:
        under = sum(per_root[r] for r in root_of[name])
        return inclusive[name] >= 0.95 * under

    lines = [f"{path.name}: {total} samples at {RATE} Hz", "  self time:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in self_time.most_common(top)]
    lines.append("  inclusive time (without frames that wrap a whole thread):")
    shown = [(name, n) for name, n in inclusive.most_common() if not wraps_a_thread(name)]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in shown[:top]]
    return "\n".join(lines)
