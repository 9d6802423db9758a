"""Who may connect: anonymous on/off and the password file, with Mosquitto's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import Authenticator, AuthOutcome, PasswordFileError
from gateway.auth.passwords import add_user

ACCEPTED, BAD, NOT_AUTHORIZED = (AuthOutcome.ACCEPTED, AuthOutcome.BAD_CREDENTIALS,
                                 AuthOutcome.NOT_AUTHORIZED)


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    add_user(path, "alice", "s3cret", create=True)
    return path


def test_anonymous_on_or_off() -> None:
    assert Authenticator(allow_anonymous=True, password_file="").authenticate(None, None) \
        is ACCEPTED
    assert Authenticator(allow_anonymous=False, password_file=None).authenticate(None, None) \
        is NOT_AUTHORIZED


def test_password_file(passwd: Path) -> None:
    auth = Authenticator(allow_anonymous=True, password_file=passwd)
    assert auth.authenticate("alice", b"s3cret") is ACCEPTED
    assert auth.authenticate("alice", b"wrong") is BAD
    assert auth.authenticate("alice", None) is BAD
    assert auth.authenticate("mallory", b"s3cret") is BAD
    assert auth.authenticate(None, None) is ACCEPTED  # anonymous still allowed


def test_reload_picks_up_new_users_and_keeps_old_ones_on_error(passwd: Path) -> None:
    auth = Authenticator(allow_anonymous=False, password_file=passwd)
    add_user(passwd, "bob", "pw")
    assert auth.authenticate("bob", "pw") is BAD
    auth.reload()
    assert auth.authenticate("bob", "pw") is ACCEPTED
    passwd.write_text("garbage\n")
    with pytest.raises(PasswordFileError, match="passwd:1"):
        auth.reload()
    assert auth.authenticate("bob", "pw") is ACCEPTED


def test_user_name_without_password_file_is_taken_on_trust_only_if_anonymous_allowed() -> None:
    assert Authenticator(allow_anonymous=True, password_file=None).authenticate("x", b"y") \
        is ACCEPTED
    assert Authenticator(allow_anonymous=False, password_file=None).authenticate("x", b"y") \
        is NOT_AUTHORIZED
