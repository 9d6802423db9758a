"""`edgeq passwd`, used like mosquitto_passwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth.passwd import passwd_main
from gateway.auth.passwords import load_password_file, verify_password


def test_batch_create_add_delete(tmp_path: Path) -> None:
    path = str(tmp_path / "passwd")
    assert passwd_main(["-c", "-b", path, "alice", "s3cret"]) == 0
    assert passwd_main(["-b", path, "bob", "pw"]) == 0
    assert passwd_main(["-D", path, "alice"]) == 0
    users = load_password_file(path)
    assert list(users) == ["bob"]
    assert verify_password(users, "bob", "pw")


def test_prompts_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["s3cret", "s3cret"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    path = tmp_path / "passwd"
    assert passwd_main(["-c", str(path), "alice"]) == 0
    assert verify_password(load_password_file(path), "alice", "s3cret")


def test_mismatched_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert passwd_main(["-c", str(tmp_path / "passwd"), "alice"]) == 1
    assert capsys.readouterr().err == "edgeq passwd: the passwords do not match\n"


@pytest.mark.parametrize(("argv", "rc", "error"), [
    (["-D", "{p}", "nobody"], 1, "edgeq passwd: {p}: no user 'nobody'\n"),
    (["-b", "{p}.new", "a", "pw"], 1, "edgeq passwd: {p}.new: no such password file; "
                                     "create it with -c\n"),
    (["{p}", "a", "pw"], 2, "edgeq passwd: a password on the command line needs -b "
                            "(see edgeq passwd --help)\n"),
    (["-c", "-D", "{p}", "a"], 2, "edgeq passwd: argument -D: not allowed with argument -c "
                                  "(see edgeq passwd --help)\n"),
])
def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             argv: list[str], rc: int, error: str) -> None:
    path = str(tmp_path / "passwd")
    assert passwd_main(["-c", "-b", path, "alice", "pw"]) == 0
    assert passwd_main([a.format(p=path) for a in argv]) == rc
    assert capsys.readouterr().err == error.format(p=path)
