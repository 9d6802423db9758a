"""`python -m bench.top`: how fast `edgeq top` shows its first frame, and its memory.

Starts a gateway with one queue in a temporary directory, then opens `edgeq top --data-dir`
in a pseudo-terminal of 80x24 five times. Each run: seconds from the exec to the first frame
that shows the queues table (its `depth` heading and the queue's name), and the resident set
size (VmRSS, VmHWM) ten seconds later. Prints each run and the medians.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.brokers import REPO

EDGEQ = Path(sys.executable).with_name("edgeq")
RUNS = 5
WATCH_SECONDS = 10.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(data_dir: Path) -> tuple[float, int, int]:
    """(seconds to the first frame, VmRSS kB, VmHWM kB) of one `edgeq top` (0 s: no frame)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execv(EDGEQ, [str(EDGEQ), "top", "--data-dir", str(data_dir)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.monotonic()
    seen, first = b"", 0.0
    while time.monotonic() - start < WATCH_SECONDS:
        if select.select([fd], [], [], 0.02)[0]:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if not first and b"depth" in seen and b"orders" in seen:
                first = time.monotonic() - start
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    os.write(fd, b"q")
    os.waitpid(pid, 0)
    os.close(fd)
    return first, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="edgeq-top-bench-"))
    config = work / "edgeq.toml"
    config.write_text(f'data_dir = "{work / "var"}"\n'
                      f'[[listeners]]\naddress = "127.0.0.1:{_free_port()}"\n'
                      f'[admin]\nlisten = "127.0.0.1:{_free_port()}"\n'
                      '[[queues]]\nfilter = "orders/#"\nname = "orders"\n')
    gateway = subprocess.Popen([str(EDGEQ), "serve", "--config", str(config)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (work / "var" / "admin.json").exists():
            if time.monotonic() > deadline:
                print("the gateway did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
        runs = [one_run(work / "var") for _ in range(RUNS)]
    finally:
        gateway.terminate()
        gateway.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    for first, rss, hwm in runs:
        print(f"first frame {first:.2f} s · VmRSS {rss / 1024:.1f} MB · VmHWM {hwm / 1024:.1f} MB")
    print(f"median: first frame {statistics.median(r[0] for r in runs):.2f} s · VmRSS "
          f"{statistics.median(r[1] for r in runs) / 1024:.1f} MB · load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
