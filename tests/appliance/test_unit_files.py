"""The systemd unit and its companions, checked by systemd's own tools in a throw-away root.

`systemd-analyze verify` needs the ExecStart= binary and the standard targets to exist where it
looks, so each test builds a root with a stub /opt/edgeq/venv/bin/edgeq and a copy of the
system's unit directory. A misspelt key only prints a warning (rc 0): any stderr output fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import REPO

UNIT_DIR = REPO / "systemd"
SYSTEM_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                     if p.is_dir()), None)
EXEC_START = ("/opt/edgeq/venv/bin/edgeq serve --config /etc/edgeq/edgeq.toml "
              "--data-dir /var/lib/edgeq")
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or SYSTEM_UNITS is None,
    reason="systemd-analyze missing: apt-get install systemd (make test does)")


def fake_root(tmp_path: Path, unit_text: str | None = None) -> tuple[Path, Path]:
    """A root with stub executables, the standard units, and edgeq.service; (root, unit)."""
    root = tmp_path / "root"
    for stub in ("opt/edgeq/venv/bin/edgeq", "bin/kill"):
        path = root / stub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    assert SYSTEM_UNITS is not None
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    unit = root / "etc/systemd/system/edgeq.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text or (UNIT_DIR / "edgeq.service").read_text())
    return root, unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def settings(text: str) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file; a key may repeat."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_verify_is_silent(tmp_path: Path) -> None:
    root, unit = fake_root(tmp_path)
    result = analyze("verify", f"--root={root}", str(unit))
    assert (result.returncode, result.stderr) == (0, "")


def test_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    text = (UNIT_DIR / "edgeq.service").read_text().replace("Type=notify", "Tpye=notify")
    root, unit = fake_root(tmp_path, text)
    result = analyze("verify", f"--root={root}", str(unit))
    assert "Tpye" in result.stderr


def test_security_exposure(tmp_path: Path) -> None:
    root, unit = fake_root(tmp_path)
    result = analyze("security", "--offline=true", f"--root={root}", str(unit))
    match = re.search(r"Overall exposure level for edgeq.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_unit_has_what_the_appliance_promises() -> None:
    unit = settings((UNIT_DIR / "edgeq.service").read_text())
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == [EXEC_START]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key in ("WatchdogSec", "TimeoutStopSec"):
        assert key in unit
    assert unit["User"] == ["edgeq"]
    assert unit["SupplementaryGroups"] == ["gpio"]
    assert unit["StateDirectory"] == unit["ConfigurationDirectory"] == ["edgeq"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert unit["CapabilityBoundingSet"] == unit["AmbientCapabilities"] == \
        ["CAP_NET_BIND_SERVICE"]


def test_sysusers_creates_the_edgeq_user_in_group_gpio(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(UNIT_DIR / "edgeq.sysusers")],
                   check=True, capture_output=True, timeout=60)
    passwd = (tmp_path / "etc/passwd").read_text()
    group = (tmp_path / "etc/group").read_text()
    assert re.search(r"^edgeq:x:\d+:\d+:.*:/var/lib/edgeq:/usr/sbin/nologin$", passwd, re.M)
    assert re.search(r"^gpio:x:\d+:edgeq$", group, re.M)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing file ownership needs root")
def test_tmpfiles_makes_secrets_readable_by_group_edgeq_only(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(UNIT_DIR / "edgeq.sysusers")],
                   check=True, capture_output=True, timeout=60)
    secret = tmp_path / "etc/edgeq/passwd"
    secret.parent.mkdir(parents=True)
    secret.write_text("")
    secret.chmod(0o644)
    result = subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create",
                             str(UNIT_DIR / "edgeq.tmpfiles")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    edgeq_gid = next(int(line.split(":")[2]) for line in
                     (tmp_path / "etc/group").read_text().splitlines()
                     if line.startswith("edgeq:"))
    assert (secret.stat().st_mode & 0o777, secret.stat().st_gid) == (0o640, edgeq_gid)
    assert (tmp_path / "etc/edgeq/tls").stat().st_mode & 0o777 == 0o750
