# usocket for the WebAssembly MicroPython used by the firmware tests.
#
# Blocking TCP through the host's network worker (runner/bridge.mjs). Only what MicroPython's
# own socket module offers for a TCP client is provided, with the same semantics:
# read(n) on a blocking socket returns n bytes or fewer at end of stream, b"" at end of stream;
# on a non-blocking socket it returns what is there, or None when nothing is; recv() returns at
# least one byte, or raises OSError(EAGAIN) when non-blocking and nothing is there. Failures
# raise OSError with the interpreter's errno numbers; an unknown host raises OSError(-202) as
# the ESP32 port does.
#
# The interpreter's heap grows on demand, a board's does not: a board's read(n) and recv(n)
# allocate n bytes up front, and raise MemoryError when no free block is that large. The shim
# does the same above MPYRUN_MAX_ALLOC bytes (default 100000, about the largest free block of
# an ESP32 without PSRAM running the light).
import errno

import _host
import _netbridge as _nb
from ubinascii import hexlify, unhexlify

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
IPPROTO_TCP = 6
IPPROTO_UDP = 17
SOL_SOCKET = 1
SO_REUSEADDR = 4
TCP_NODELAY = 1

_READ_AHEAD = 4096
_MAX_ALLOC = int(_host.getenv("MPYRUN_MAX_ALLOC") or 100000)
_ERRNO = {"EPIPE": 32, "EISCONN": 106, "ENOTCONN": 107, "EBADF": 9}


def _errno(name):
    return getattr(errno, name, None) or _ERRNO.get(name, errno.EIO)


def _check(r):
    # Replies are data (hex), counts (int), None, or an errno name such as "ECONNRESET".
    if isinstance(r, str) and r and r[0] == "E":
        raise OSError(_errno(r))
    return r


def _allocate(n):
    if n > _MAX_ALLOC:
        raise MemoryError(f"memory allocation failed, allocating {n} bytes")


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    r = _nb.getaddrinfo(host)
    if r == "EAI":
        raise OSError(-202)
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (r, port))]


class socket:  # noqa: N801 - the name MicroPython (and CPython) give it
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=IPPROTO_TCP):
        if type != SOCK_STREAM:
            raise OSError(errno.EOPNOTSUPP)
        self._id = _check(_nb.socket())
        self._timeout = -1  # ms; -1 blocks, 0 is non-blocking
        self._buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self, addr):
        _check(_nb.connect(self._id, addr[0], addr[1], self._timeout))

    def setblocking(self, flag):
        self._timeout = -1 if flag else 0

    def settimeout(self, t):
        self._timeout = -1 if t is None else int(t * 1000)

    def setsockopt(self, level, opt, value):
        pass

    def _fetch(self, n, mode):
        r = _check(_nb.read(self._id, n, mode, self._timeout, _READ_AHEAD))
        if r is None:
            return None
        return unhexlify(r)

    def read(self, n=-1):
        _allocate(n)
        return self._read(n)

    def _read(self, n):
        if n < 0:
            chunks = [self._buf]
            self._buf = b""
            while True:
                d = self._fetch(_READ_AHEAD, "some")
                if not d:
                    return b"".join(chunks)
                chunks.append(d)
        if len(self._buf) >= n:
            out = self._buf[:n]
            self._buf = self._buf[n:]
            return out
        d = self._fetch(n - len(self._buf), "exact")
        if d is None:
            if not self._buf:
                return None
            d = b""
        d = self._buf + d
        self._buf = d[n:]
        return d[:n]

    def recv(self, n):
        _allocate(n)
        if self._buf:
            out = self._buf[:n]
            self._buf = self._buf[n:]
            return out
        d = self._fetch(n, "some")
        if d is None:
            raise OSError(errno.EAGAIN)
        self._buf = d[n:]
        return d[:n]

    def readinto(self, buf, nbytes=-1):
        n = len(buf) if nbytes < 0 else nbytes
        d = self._read(n)
        if d is None:
            return None
        buf[: len(d)] = d
        return len(d)

    def readline(self):
        line = b""
        while not line.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            line += c
        return line

    def write(self, buf, a=None, b=None):
        # write(buf), write(buf, max_len) or write(buf, off, max_len), as a MicroPython stream.
        if isinstance(buf, str):
            buf = buf.encode()
        mv = memoryview(buf)
        if b is not None:
            mv = mv[a : a + b]
        elif a is not None:
            mv = mv[:a]
        if not len(mv):
            return 0
        return _check(_nb.write(self._id, hexlify(mv).decode()))

    def send(self, buf):
        return self.write(buf)

    def sendall(self, buf):
        self.write(buf)

    def close(self):
        if self._id is not None:
            _nb.close(self._id)
            self._id = None
