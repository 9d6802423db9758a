"""The data directory: created if missing, checked writable, and locked for one `edgeq serve`.

Two gateways on one SQLite store would interleave their commits and overwrite each other's
`admin.json`. The lock is `flock` on `DATA_DIR/edgeq.lock` (holding the owner's pid, for the
message): the kernel releases it when the process dies, however it dies, so a crash never
leaves a stale lock behind. Errors are `ConfigError`s naming `--data-dir` and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from gateway.config import ConfigError

LOCK_NAME = "edgeq.lock"


class DataDirLock:
    """An open, locked `edgeq.lock`; `release()` (or process exit) frees the directory."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        os.close(self._fd)


def lock_data_dir(data_dir: str) -> DataDirLock:
    """Create `data_dir` if needed and take its lock; ConfigError with the reason otherwise."""
    where = f"--data-dir {data_dir}"
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{where}: cannot create it: {e.strerror}") from None
    fd = _open_lock_file(path / LOCK_NAME, where)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        owner = _owner(fd)
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ConfigError(f"{where}: cannot lock {LOCK_NAME}: {e.strerror}") from None
        raise ConfigError(f"{where}: in use by another edgeq serve{owner}; stop it first or "
                          "use another data directory") from None
    with contextlib.suppress(OSError):  # read-only or full: the lock holds without the pid
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return DataDirLock(fd)


def _open_lock_file(path: Path, where: str) -> int:
    """The lock file, created if missing. On a file system that turned read-only the existing
    file is opened read-only (flock still works), so the store's own error explains it."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.EROFS and path.exists():
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        raise ConfigError(f"{where}: not writable: {e.strerror}; give the gateway's user "
                          "write access to it") from None


def _owner(fd: int) -> str:
    """` (pid N)` from the lock file of the gateway holding it, or nothing if unreadable."""
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
