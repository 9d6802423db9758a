"""The password file: mosquitto's `user:hash` line format with argon2id hashes.

One user per line, `name:$argon2id$v=19$m=...,t=...,p=...$salt$hash`; blank lines and lines
starting with `#` are ignored. Hashing and verification are argon2-cffi's (no hand-rolled crypto).
The cost is OWASP's recommended minimum for argon2id (19 MiB, 2 passes, 1 lane): tens of
milliseconds on a laptop, a few hundred on a small Pi, and little memory, so verify passwords
off the event loop (`asyncio.to_thread`).

Functions here read and write files and never talk to clients; `authenticator.py` decides what a
CONNECT gets, `passwd.py` is the `edgeq passwd` command.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

NEW_FILE_MODE = 0o640
SERVICE_GROUP = "edgeq"



class PasswordFileError(ValueError):
    """The password file cannot be read or changed; the message names the file (and line)."""


def username_error(username: str) -> str | None:
    """Why `username` cannot be stored in a password file, or None if it can."""
    if not username:
        return "the user name is empty"
    if ":" in username:
        return "a user name cannot contain ':'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in username):
        return "a user name cannot contain control characters"
    if len(username.encode()) > 0xFFFF:
        return "a user name is at most 65535 bytes"
    return None


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2 (cffi and its library) is loaded by the first password check or hash, so that a
    gateway without a password file never loads it."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str | bytes) -> str:
    """A fresh salted argon2id hash of `password` (str is UTF-8 encoded)."""
    return _hasher().hash(password)


def parse_password_file(text: str, source: str = "<passwords>") -> dict[str, str]:
    """`{user: hash}` from the text of a password file; errors name `source` and the line."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, hashed = line.partition(":")
        where = f"{source}:{number}"
        if not sep or not username:
            raise PasswordFileError(f"{where}: expected 'user:hash'; re-add the user with "
                                    "`edgeq passwd`")
        if not hashed.startswith("$argon2"):
            raise PasswordFileError(
                f"{where}: user {username!r} has no argon2 hash (mosquitto $6$/$7$ hashes are "
                "not supported); set the password again with `edgeq passwd`")
        if username in entries:
            raise PasswordFileError(f"{where}: user {username!r} appears twice; delete one line")
        entries[username] = hashed
    return entries


def load_password_file(path: Path | str) -> dict[str, str]:
    """`{user: hash}` from the password file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileError(f"{path}: cannot read the password file: {exc}") from exc
    return parse_password_file(text, str(path))


def verify_password(entries: Mapping[str, str], username: str, password: str | bytes) -> bool:
    """True when `password` is `username`'s. Slow on purpose (argon2); also for unknown users."""
    hashed = entries.get(username)
    if hashed is None:
        # Same work as a wrong password, so the time taken does not reveal which names exist.
        _verifies(_dummy_hash(), b"")
        return False
    return _verifies(hashed, password)


def _verifies(hashed: str, password: str | bytes) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash("edgeq: no such user")


def format_password_file(entries: Mapping[str, str]) -> str:
    """The file text for `entries`, one `user:hash` line each, sorted by user name."""
    return "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items()))


def write_password_file(path: Path | str, entries: Mapping[str, str]) -> None:
    """Replace the file at `path` atomically (write, fsync, rename).

    An existing file keeps its mode, owner and group. A new one gets mode 0640 and, when run as
    root and the `edgeq` group exists, group `edgeq`, so the service can read it."""
    path = Path(path)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(format_password_file(entries))
            f.flush()
            os.fsync(f.fileno())
        _copy_ownership(tmp, old)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_ownership(tmp: str, old: os.stat_result | None) -> None:
    if old is not None:
        os.chmod(tmp, old.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, old.st_uid, old.st_gid)
        return
    os.chmod(tmp, NEW_FILE_MODE)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):  # no such group: a laptop, not the appliance
            os.chown(tmp, 0, grp.getgrnam(SERVICE_GROUP).gr_gid)


def add_user(path: Path | str, username: str, password: str, *, create: bool = False) -> None:
    """Set `username`'s password, adding the user if new. `create` starts a new, empty file
    (replacing any existing one); otherwise the file must exist."""
    problem = username_error(username)
    if problem:
        raise PasswordFileError(f"{path}: {problem}")
    if not password:
        raise PasswordFileError(f"{path}: the password is empty")
    if create:
        entries: dict[str, str] = {}
    elif not Path(path).exists():
        raise PasswordFileError(f"{path}: no such password file; create it with -c")
    else:
        entries = load_password_file(path)
    entries[username] = hash_password(password)
    _write(path, entries)


def delete_user(path: Path | str, username: str) -> None:
    """Remove `username` from the password file."""
    entries = load_password_file(path)
    if username not in entries:
        raise PasswordFileError(f"{path}: no user {username!r}")
    del entries[username]
    _write(path, entries)


def _write(path: Path | str, entries: Mapping[str, str]) -> None:
    try:
        write_password_file(path, entries)
    except OSError as exc:
        raise PasswordFileError(f"{path}: cannot write the password file: {exc}") from exc
