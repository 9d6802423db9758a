"""`edgeq passwd`: manage the password file, like mosquitto_passwd.

    edgeq passwd -c /etc/edgeq/passwd alice          create the file (replacing it), prompt
    edgeq passwd /etc/edgeq/passwd bob               add bob or change his password, prompt
    edgeq passwd -b /etc/edgeq/passwd carol s3cret   password on the command line (scripts)
    edgeq passwd -D /etc/edgeq/passwd bob            delete bob

A thin layer over `gateway.auth.passwords`: parse arguments, ask for the password, print one line
on error. The running broker picks changes up on `systemctl reload edgeq` (SIGHUP).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from typing import NoReturn

from gateway.auth.passwords import PasswordFileError, add_user, delete_user

PROG = "edgeq passwd"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, for one-line errors."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Add, change or delete users in an edgeq password "
                     "file (argon2id hashes). Reload the broker afterwards: "
                     "systemctl reload edgeq.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-c", dest="create", action="store_true",
                      help="create a new password file; an existing one is overwritten")
    mode.add_argument("-D", dest="delete", action="store_true", help="delete the user")
    parser.add_argument("-b", dest="batch", action="store_true",
                        help="take the password from the command line (visible to other "
                        "local users in the process list)")
    parser.add_argument("file", help="the password file, e.g. /etc/edgeq/passwd")
    parser.add_argument("username")
    parser.add_argument("password", nargs="?", help="with -b only")
    return parser


def _ask_password() -> str:
    """Prompt twice on the terminal; raise PasswordFileError on mismatch or end of input."""
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Reenter password: ")
    except EOFError:
        raise PasswordFileError("no password entered") from None
    if first != second:
        raise PasswordFileError("the passwords do not match")
    return first


def _run(args: argparse.Namespace) -> None:
    if args.delete:
        if args.batch or args.password is not None:
            raise _UsageError("-D takes a file and a user name only")
        delete_user(args.file, args.username)
        return
    if args.batch and args.password is None:
        raise _UsageError("-b needs the password after the user name")
    if not args.batch and args.password is not None:
        raise _UsageError("a password on the command line needs -b")
    password = args.password if args.batch else _ask_password()
    add_user(args.file, args.username, password, create=args.create)


def passwd_main(argv: Sequence[str] | None = None) -> int:
    """Run `edgeq passwd` with `argv` (without the program name); 0 ok, 1 error, 2 usage."""
    try:
        _run(_parser().parse_args(argv))
    except _UsageError as exc:
        print(f"{PROG}: {exc} (see {PROG} --help)", file=sys.stderr)
        return 2
    except PasswordFileError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(passwd_main())
