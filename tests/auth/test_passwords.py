"""The password file: mosquitto's `user:hash` lines with argon2id hashes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.auth.passwords import (
    PasswordFileError,
    add_user,
    delete_user,
    load_password_file,
    parse_password_file,
    verify_password,
)


def test_add_then_verify(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    add_user(path, "alice", "s3cret", create=True)
    add_user(path, "bob", "hunter2")
    users = load_password_file(path)
    assert sorted(users) == ["alice", "bob"]
    assert users["alice"].startswith("$argon2id$")
    assert verify_password(users, "alice", "s3cret")
    assert verify_password(users, "alice", b"s3cret")  # MQTT passwords are bytes
    assert not verify_password(users, "alice", "hunter2")
    assert not verify_password(users, "mallory", "s3cret")


def test_hashes_are_salted(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    add_user(path, "alice", "same", create=True)
    add_user(path, "bob", "same")
    users = load_password_file(path)
    assert users["alice"] != users["bob"]


def test_change_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    add_user(path, "alice", "old", create=True)
    add_user(path, "alice", "new")
    assert verify_password(load_password_file(path), "alice", "new")
    delete_user(path, "alice")
    assert load_password_file(path) == {}


def test_new_file_is_not_world_readable_and_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    add_user(path, "alice", "pw", create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.chmod(0o600)
    add_user(path, "bob", "pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_comments_and_blank_lines_are_ignored() -> None:
    text = "# users of the kitchen gateway\n\nalice:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n"
    assert list(parse_password_file(text)) == ["alice"]


@pytest.mark.parametrize(("text", "message"), [
    ("alice\n", "passwd:1: expected 'user:hash'"),
    ("alice:$7$101$abc\n", "passwd:1: user 'alice' has no argon2 hash"),
    ("a:$argon2id$x\na:$argon2id$y\n", "passwd:2: user 'a' appears twice"),
])
def test_bad_lines_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(PasswordFileError, match=message.replace("$", r"\$")):
        parse_password_file(text, "passwd")


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    with pytest.raises(PasswordFileError, match="no such password file; create it with -c"):
        add_user(path, "alice", "pw")
    with pytest.raises(PasswordFileError, match="cannot contain ':'"):
        add_user(path, "a:b", "pw", create=True)
    with pytest.raises(PasswordFileError, match="password is empty"):
        add_user(path, "alice", "", create=True)
    add_user(path, "alice", "pw", create=True)
    with pytest.raises(PasswordFileError, match="no user 'bob'"):
        delete_user(path, "bob")
