"""What first boot asks the image's own edgeq: would `edgeq serve` accept this file
(`edgeq check-config`, the loaders serve uses), and the argon2 hash of a new password.

edgeq lives in its venv (/opt/edgeq/venv); first boot runs on Debian's python3 and reaches it
only through subprocesses of the venv's interpreter, so this module imports nothing of edgeq.
When the root being provisioned is not `/` (tests, a build chroot seen from outside), the
absolute paths of a config are rebased onto that root before checking, and back in messages.
Standard library only; nothing here prints or logs a password.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVICE_USER = "device"
PASSWORD_FILE = "etc/edgeq/passwd"
CREDENTIALS_FILE = "etc/edgeq/device-credentials"
HASH_SNIPPET = ("import sys\nfrom gateway.auth.passwords import hash_password\n"
                "print(hash_password(sys.stdin.read()))")
_ABSOLUTE_STRING = re.compile(r"([\"'])/")
LOOPBACK = ("127.", "[::1]:", "localhost:")


class EdgeqUnavailable(Exception):
    """The image's edgeq could not be run: nothing it would read can be vouched for."""


@dataclass(frozen=True)
class Edgeq:
    """The image's edgeq, run with its venv's interpreter (`python -m gateway ...`)."""

    python: Path

    def _run(self, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([str(self.python), *args], input=stdin, capture_output=True,
                                  text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EdgeqUnavailable(f"{self.python} did not run: {e}") from None

    def check(self, config: Path) -> list[str]:
        """`edgeq check-config --config CONFIG`: its problems (FILE:LINE: reason), or []."""
        done = self._run(["-m", "gateway", "check-config", "--config", str(config)])
        if done.returncode == 0:
            return []
        problems = done.stderr.strip().splitlines()
        if done.returncode != 1 or not problems or "Traceback" in done.stderr:
            last = problems[-1] if problems else f"exit status {done.returncode}"
            raise EdgeqUnavailable(f"edgeq check-config did not run ({last})")
        return problems

    def hash_password(self, password: str) -> str:
        """edgeq's own argon2id hash of `password` (given on stdin, never as an argument)."""
        done = self._run(["-c", HASH_SNIPPET], stdin=password)
        hashed = done.stdout.strip()
        if done.returncode != 0 or not hashed.startswith("$argon2"):
            raise EdgeqUnavailable(f"edgeq could not hash a password (exit status "
                                   f"{done.returncode})")
        return hashed


def rebased(text: str, root: Path) -> str:
    """`text` with every quoted absolute path (`"/etc/edgeq/passwd"`) moved under `root`."""
    if root == Path("/"):
        return text
    return _ABSOLUTE_STRING.sub(lambda m: f"{m[1]}{root}/", text)


def config_problems(edgeq: Edgeq, text: str, root: Path, shown_as: str) -> list[str]:
    """What `edgeq check-config` says of config `text` installed under `root` (as `shown_as`),
    with the files it names as they are under `root` now."""
    with tempfile.TemporaryDirectory(prefix="edgeq-firstboot-") as scratch:
        candidate = Path(scratch) / "edgeq.toml"
        candidate.write_text(rebased(text, root))
        problems = edgeq.check(candidate)
    problems = [p.replace(str(candidate), shown_as) for p in problems]
    if root != Path("/"):
        problems = [p.replace(f"{root}/", "/") for p in problems]
    return problems


def auth_file_problems(edgeq: Edgeq, key: str, path: Path) -> list[str]:
    """What `edgeq check-config` says of a password file (`key` = "password_file") or an ACL
    file ("acl_file") at `path`, read as `edgeq serve` would read it."""
    with tempfile.TemporaryDirectory(prefix="edgeq-firstboot-") as scratch:
        wrapper = Path(scratch) / "edgeq.toml"
        wrapper.write_text(f'[auth]\n{key} = "{path}"\n')
        return edgeq.check(wrapper)


def anonymous_network_listeners(config: dict[str, Any]) -> list[str]:
    """The listeners of a parsed edgeq.toml that take anonymous clients from the network
    (edgeq allows anonymous clients unless `auth.allow_anonymous = false`)."""
    auth = config.get("auth")
    if isinstance(auth, dict) and auth.get("allow_anonymous") is False:
        return []
    listeners = config.get("listeners", [{"address": "127.0.0.1:1883"}])
    addresses = [str(x.get("address", "")) for x in listeners if isinstance(x, dict)]
    return [a for a in addresses if not a.startswith(LOOPBACK)]


def new_password() -> str:
    """A random password for the device user: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def credentials_text(password: str) -> str:
    return (f"# MQTT credentials of this gateway's devices, made at first boot (docs/image.md).\n"
            f"# Readable by root only. Change them with `sudo edgeq passwd /{PASSWORD_FILE} "
            f"{DEVICE_USER}`.\nusername = {DEVICE_USER}\npassword = {password}\n")
