"""The test bench itself: the socket module given to MicroPython behaves like a board's, and
sleeping does not burn the CPU. Each check runs MicroPython code in the real interpreter."""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.firmware.harness import run_micropython
from tests.support.procs import free_port


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that greets, echoes one line, then closes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = int(srv.getsockname()[1])

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"hello\n")
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(100)
                if not chunk:
                    break
                line += chunk
            time.sleep(0.2)  # the client polls non-blocking meanwhile
            conn.sendall(line.upper())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield port
    srv.close()
    t.join(5)


def test_blocking_and_non_blocking_reads_behave_like_a_board(echo_port: int) -> None:
    code = f"""
import socket
s = socket.socket()
s.connect(socket.getaddrinfo('localhost', {echo_port})[0][-1])
print(s.read(6))
s.write(b'xabcx\\n', 1, 4)
s.write('\\n')
s.setblocking(False)
print(s.read(3))
s.setblocking(True)
print(s.read(2), s.read(1), s.read(5))
"""
    proc = run_micropython(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["b'hello\\n'", "None", "b'AB' b'C' b'X\\n'"]


def test_socket_failures_raise_oserror_with_the_interpreters_errno() -> None:
    code = f"""
import errno, socket
s = socket.socket()
try:
    s.connect(('127.0.0.1', {free_port()}))
except OSError as e:
    print('refused', e.errno == errno.ECONNREFUSED)
try:
    socket.getaddrinfo('no-such-host.invalid', 1883)
except OSError as e:
    print('unknown host', e.errno)
"""
    proc = run_micropython(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["refused True", "unknown host -202"]


def test_sleeping_waits_without_burning_the_cpu() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = run_micropython("import time\nfor _ in range(4):\n    time.sleep_ms(250)\n")
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert wall >= 1.0
    assert cpu < 0.8, f"{cpu:.2f} s of CPU for 1 s of sleep: time.sleep_ms busy-waits"


def test_an_uncaught_exception_fails_the_run_with_its_traceback() -> None:
    proc = run_micropython("def f():\n    raise ValueError('boom')\nf()\n")
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr
    assert run_micropython("import sys\nsys.exit(3)\n").returncode == 3
