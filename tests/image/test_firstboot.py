"""First-boot provisioning (image/firstboot/edgeq_firstboot.py) on a fake root, without root.

Each test writes files onto a fake boot partition, runs `main(boot, root)` and looks at what
landed in the root file system, what was left on the boot partition and what was reported.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.auth.clients import connack_v311
from tests.conftest import GatewayFactory
from tests.image.conftest import DEFAULT_CONFIG, FIRSTBOOT

AS_ROOT = os.geteuid() == 0
CONNECT = bytes.fromhex("100c00044d5154540402003c0000")  # MQTT 3.1.1, clean session
CONNACK_NOT_AUTHORIZED = bytes.fromhex("20020005")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk8cK2x3Xx1cNnRgqGbbqYJgqIwuLQ1Rq3oZ1mS9pWn ops@laptop"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def edgeq(firstboot: ModuleType) -> Any:
    """The image's edgeq as first boot calls it, with this repository's interpreter."""
    return firstboot.Edgeq(Path(sys.executable))


def served_config(root: Path) -> str:
    """The root's edgeq.toml with its /etc/edgeq/ paths pointing into the fake root."""
    return (root / "etc/edgeq/edgeq.toml").read_text().replace("/etc/edgeq/",
                                                               f"{root}/etc/edgeq/")


def device_password(root: Path) -> str:
    lines = (root / "etc/edgeq/device-credentials").read_text().splitlines()
    return next(line.split(" = ", 1)[1] for line in lines if line.startswith("password = "))


# --- everything at once ------------------------------------------------------------------

def test_sample_boot_partition_is_applied_and_removed(firstboot: ModuleType, sample_boot: Path,
                                                      root: Path) -> None:
    rc = firstboot.main(sample_boot, root, edgeq=edgeq(firstboot))

    assert rc == 0
    config = root / "etc/edgeq/edgeq.toml"
    assert "allow_anonymous = false" in config.read_text()
    assert mode(config) == 0o640
    assert (root / "etc/hostname").read_text() == "site-gw-07\n"
    assert "127.0.1.1\tsite-gw-07" in (root / "etc/hosts").read_text()
    wpa = root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    assert "country=DE" in wpa.read_text() and mode(wpa) == 0o600
    keys = root / "home/admin/.ssh/authorized_keys"
    assert len(keys.read_text().splitlines()) == 2 and mode(keys) == 0o600
    assert mode(root / "home/admin/.ssh") == 0o700
    assert (root / "etc/edgeq/tls/server.key").read_text().startswith("-----BEGIN PRIVATE KEY")
    assert mode(root / "etc/edgeq/tls") == 0o750
    assert (root / "etc/edgeq/passwd").read_text().startswith("sensor-01:$argon2id$")
    assert (root / "etc/edgeq/acl").exists()
    # Secrets do not stay on a partition any card reader can read; only the log remains.
    assert sorted(p.name for p in sample_boot.iterdir()) == ["edgeq-firstboot.log"]


@pytest.mark.skipif(not AS_ROOT, reason="ownership needs root")
def test_files_belong_to_the_image_users_not_the_hosts(firstboot: ModuleType, sample_boot: Path,
                                                       root: Path) -> None:
    firstboot.main(sample_boot, root)

    keys = (root / "home/admin/.ssh/authorized_keys").stat()
    assert (keys.st_uid, keys.st_gid) == (1000, 1000)
    for secret in ("etc/edgeq/edgeq.toml", "etc/edgeq/passwd", "etc/edgeq/tls/server.key"):
        st = (root / secret).stat()
        assert (st.st_uid, st.st_gid) == (0, 998), secret


# --- missing files -----------------------------------------------------------------------

def test_empty_boot_partition_changes_nothing(firstboot: ModuleType, boot: Path, root: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert firstboot.main(boot, root) == 0

    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert list(boot.iterdir()) == []  # not even a log: nothing is written on a plain boot
    assert "nothing to provision" in capsys.readouterr().out


def test_unmounted_boot_partition_is_not_an_error(firstboot: ModuleType, tmp_path: Path,
                                                  root: Path) -> None:
    assert firstboot.main(tmp_path / "no-such-dir", root) == 0


def test_only_a_key_keeps_the_default_config(firstboot: ModuleType, boot: Path,
                                             root: Path) -> None:
    (boot / "authorized_keys").write_text(KEY + "\n")

    assert firstboot.main(boot, root) == 0

    assert (root / "etc/edgeq/edgeq.toml").read_text() == DEFAULT_CONFIG.read_text()
    assert not (root / "etc/wpa_supplicant").exists()
    assert (root / "home/admin/.ssh/authorized_keys").read_text() == KEY + "\n"


# --- bad TOML: a clear error, and the gateway keeps a configuration it can start with ----

def test_bad_toml_is_reported_and_the_default_config_stays(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "edgeq.toml").write_text('[[listeners]]\naddress = "0.0.0.0:1883\n')
    (boot / "hostname").write_text("gw-2\n")

    rc = firstboot.main(boot, root, edgeq=edgeq(firstboot))

    assert rc == 1
    out = capsys.readouterr().out
    assert f"edgeq-firstboot: ERROR: {boot / 'edgeq.toml'}: not valid TOML" in out
    assert "(at line 2, column" in out
    assert "edgeq starts with the configuration it already has (/etc/edgeq/edgeq.toml)" in out
    assert (root / "etc/edgeq/edgeq.toml").read_text() == DEFAULT_CONFIG.read_text()
    # Kept for the person to fix, under a name that is not retried at every boot.
    assert (boot / "edgeq.toml.invalid").exists() and not (boot / "edgeq.toml").exists()
    assert "not valid TOML" in (boot / "edgeq-firstboot.log").read_text()
    # The other files are still applied.
    assert (root / "etc/hostname").read_text() == "gw-2\n"


def test_after_bad_toml_the_gateway_starts_with_the_safe_default(
        firstboot: ModuleType, boot: Path, root: Path, gateway_factory: GatewayFactory) -> None:
    (boot / "edgeq.toml").write_text("[auth\nallow_anonymous = true\n")
    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 1

    # What the service would read: the image default, served (on a free loopback port here):
    # no anonymous clients, the device user made at first boot with its password.
    gw = gateway_factory(config_text=served_config(root))
    with socket.create_connection((gw.host, gw.port), timeout=5) as s:
        s.sendall(CONNECT)
        assert s.recv(4) == CONNACK_NOT_AUTHORIZED
    assert connack_v311(gw.port, "light-1", "device", device_password(root)) == 0
    assert connack_v311(gw.port, "light-1", "device", "guess") == 4


def test_schema_errors_name_the_key(firstboot: ModuleType, boot: Path, root: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "edgeq.toml").write_text('[[listeners]]\naddress = "0.0.0.0:1883"\nport = 1\n')

    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 1

    assert "listeners[0].port: unknown key" in capsys.readouterr().out
    assert (root / "etc/edgeq/edgeq.toml").read_text() == DEFAULT_CONFIG.read_text()


def test_an_edgeq_that_cannot_run_installs_nothing_it_would_read(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file nobody could check is not installed, and the failure is loud (exit status 1)."""
    (boot / "edgeq.toml").write_text('log_level = "debug"\n')
    no_edgeq = firstboot.Edgeq(Path("/usr/bin/python3"))  # Debian's python3: no gateway

    assert firstboot.main(boot, root, edgeq=no_edgeq) == 1

    out = capsys.readouterr().out
    assert "not checked: edgeq check-config did not run" in out
    assert "no MQTT user could be created" in out
    assert (root / "etc/edgeq/edgeq.toml").read_text() == DEFAULT_CONFIG.read_text()


# --- the image's safe defaults -------------------------------------------------------------

def test_first_boot_creates_the_device_user_and_prints_only_where_its_password_is(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 0

    out = capsys.readouterr().out
    password = device_password(root)
    assert len(password) >= 32 and password not in out
    assert "its password is in /etc/edgeq/device-credentials (root only" in out
    assert mode(root / "etc/edgeq/device-credentials") == 0o600
    assert mode(root / "etc/edgeq/passwd") == 0o640
    assert (root / "etc/edgeq/passwd").read_text().startswith("device:$argon2id$")
    # The next boot leaves them alone.
    before = (root / "etc/edgeq/passwd").read_bytes()
    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 0
    assert "nothing to provision" in capsys.readouterr().out
    assert (root / "etc/edgeq/passwd").read_bytes() == before


def test_the_image_default_refuses_anonymous_clients_and_syncs_every_commit() -> None:
    config = tomllib.loads(DEFAULT_CONFIG.read_text())
    assert config["auth"] == {"allow_anonymous": False, "password_file": "/etc/edgeq/passwd"}
    assert config["storage"]["synchronous"] == "full"
    assert [x["address"] for x in config["listeners"]] == ["0.0.0.0:1883"]


def test_a_config_with_anonymous_network_clients_is_installed_with_a_warning(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "edgeq.toml").write_text('[[listeners]]\naddress = "0.0.0.0:1883"\n'
                                     '[[listeners]]\naddress = "127.0.0.1:1884"\n')

    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 0

    warnings = [ln for ln in capsys.readouterr().out.splitlines() if "WARNING" in ln]
    assert len(warnings) == 1, warnings
    assert "anonymous clients are accepted on 0.0.0.0:1883" in warnings[0]


def test_a_password_file_edgeq_would_refuse_is_not_installed(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "edgeq.passwd").write_text("sensor-01:s3cret\n")  # user:password, not user:hash

    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 1

    out = capsys.readouterr().out
    assert f"{boot / 'edgeq.passwd'}:1: user 'sensor-01' has no argon2 hash" in out
    assert "s3cret" not in out
    assert "sensor-01" not in (root / "etc/edgeq/passwd").read_text()
    assert (boot / "edgeq.passwd.invalid").exists()


def test_an_acl_edgeq_would_refuse_is_not_installed(firstboot: ModuleType, boot: Path,
                                                    root: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "edgeq.acl").write_text("user sensor-01\ntopic write sensors/#   # its data\n")

    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 1

    assert f"{boot / 'edgeq.acl'}:2: bad topic filter" in capsys.readouterr().out
    assert not (root / "etc/edgeq/acl").exists()
    assert (boot / "edgeq.acl.invalid").exists()


def test_a_config_naming_a_file_that_is_not_there_is_refused(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "edgeq.toml").write_text('[auth]\nacl_file = "/etc/edgeq/acl"\n')

    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 1

    assert "/etc/edgeq/acl: cannot read the ACL file" in capsys.readouterr().out
    assert (root / "etc/edgeq/edgeq.toml").read_text() == DEFAULT_CONFIG.read_text()


def test_a_config_with_the_files_it_names_is_installed(firstboot: ModuleType, boot: Path,
                                                       root: Path) -> None:
    (boot / "edgeq.acl").write_text("user device\ntopic readwrite sensors/#\n")
    config = DEFAULT_CONFIG.read_text().replace('password_file = "/etc/edgeq/passwd"',
                                                'password_file = "/etc/edgeq/passwd"\n'
                                                'acl_file = "/etc/edgeq/acl"')
    (boot / "edgeq.toml").write_text(config)

    assert firstboot.main(boot, root, edgeq=edgeq(firstboot)) == 0
    assert (root / "etc/edgeq/edgeq.toml").read_text() == config


def test_errors_carry_a_journal_priority_under_systemd(
        firstboot: ModuleType, boot: Path, root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    (boot / "edgeq.toml").write_text("= oops\n")

    firstboot.main(boot, root)

    assert "<3>edgeq-firstboot: ERROR:" in capsys.readouterr().out


# --- each file's rules -------------------------------------------------------------------

def test_wifi_passphrase_is_stored_only_as_its_wpa_hash(firstboot: ModuleType, boot: Path,
                                                        root: Path) -> None:
    # IEEE 802.11i-2004 annex H.4 test vector: passphrase "password", SSID "IEEE".
    (boot / "wifi.toml").write_text(
        'country = "GB"\n[[network]]\nssid = "IEEE"\npassword = "password"\n')

    assert firstboot.main(boot, root) == 0

    conf = (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert "psk=f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e" in conf
    assert f"ssid={b'IEEE'.hex()}" in conf
    assert '"password"' not in conf


@pytest.mark.parametrize("case", [
    ('[[network]]\nssid = "x"\npassword = "12345678"\n', "country"),
    ('country = "DE"\n[[network]]\nssid = "x"\npassword = "short"\n', "8 to 63"),
    ('country = "DE"\n', "at least one [[network]]"),
    ('country = "DE"\n[[network]]\nssid = "x"\npasword = "12345678"\n', "unknown key(s) pasword"),
])
def test_wifi_mistakes_are_explained(firstboot: ModuleType, boot: Path, root: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     case: tuple[str, str]) -> None:
    wifi, message = case
    (boot / "wifi.toml").write_text(wifi)

    assert firstboot.main(boot, root) == 1

    assert message in capsys.readouterr().out
    assert not (root / "etc/wpa_supplicant").exists()


def test_open_wifi_network(firstboot: ModuleType, boot: Path, root: Path) -> None:
    (boot / "wifi.toml").write_text('country = "FR"\n[[network]]\nssid = "cafe"\n')

    assert firstboot.main(boot, root) == 0
    assert "key_mgmt=NONE" in (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()


def test_raspberry_pi_os_wpa_supplicant_conf_is_accepted(firstboot: ModuleType, boot: Path,
                                                         root: Path) -> None:
    text = 'country=US\nnetwork={\n ssid="lab"\n psk="12345678"\n}\n'
    (boot / "wpa_supplicant.conf").write_text(text)

    assert firstboot.main(boot, root) == 0
    assert (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text() == text


def test_wifi_toml_wins_over_wpa_supplicant_conf(firstboot: ModuleType, boot: Path,
                                                 root: Path) -> None:
    (boot / "wifi.toml").write_text('country = "DE"\n[[network]]\nssid = "a"\n')
    (boot / "wpa_supplicant.conf").write_text("network={\n ssid=\"b\"\n}\n")

    assert firstboot.main(boot, root) == 1
    assert "ssid=61" in (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert (boot / "wpa_supplicant.conf.invalid").exists()


def test_private_key_in_authorized_keys_is_refused(firstboot: ModuleType, boot: Path,
                                                   root: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "authorized_keys").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n")

    assert firstboot.main(boot, root) == 1
    assert "no public key found" in capsys.readouterr().out
    assert not (root / "home/admin/.ssh").exists()


def test_no_key_material_reaches_the_journal(firstboot: ModuleType, boot: Path, root: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    body = ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "QyNTUxOQAAACB5PHCtsd18dXDZ0YKhm26mCYKiMLi0NUat6GdZkvaVpwAAAJgAAAAA"]
    (boot / "authorized_keys").write_text(
        f"{KEY}\n-----BEGIN OPENSSH PRIVATE KEY-----\n{body[0]}\n{body[1]}\n"
        "-----END OPENSSH PRIVATE KEY-----\n")

    assert firstboot.main(boot, root) == 0

    out = capsys.readouterr().out + (boot / "edgeq-firstboot.log").read_text()
    assert "skipped line(s) 2, 3, 4, 5: not public keys" in out
    assert not any(fragment in out for line in body for fragment in (line[:8], line[-8:]))


def test_junk_lines_in_authorized_keys_are_skipped_with_a_warning(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (boot / "authorized_keys").write_text(f"{KEY}\nnot a key\n")

    assert firstboot.main(boot, root) == 0
    assert "WARNING:" in capsys.readouterr().out
    assert (root / "home/admin/.ssh/authorized_keys").read_text() == KEY + "\n"


@pytest.mark.parametrize("name", ["-gw", "gw_1", "a" * 64, "two\nlines", ""])
def test_bad_hostnames_are_refused(firstboot: ModuleType, boot: Path, root: Path,
                                   name: str) -> None:
    (boot / "hostname").write_text(name)

    assert firstboot.main(boot, root) == 1
    assert not (root / "etc/hostname").exists()


def test_hostname_is_not_set_on_the_running_host_unless_live(
        firstboot: ModuleType, boot: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(name: str) -> None:
        raise AssertionError("sethostname called")

    monkeypatch.setattr(firstboot.socket, "sethostname", forbidden)
    (boot / "hostname").write_text("Gateway-1\n")

    assert firstboot.main(boot, root) == 0
    assert (root / "etc/hostname").read_text() == "gateway-1\n"


def test_tls_files_must_be_pem(firstboot: ModuleType, boot: Path, root: Path) -> None:
    (boot / "tls").mkdir()
    (boot / "tls/server.key").write_text("not a key")

    assert firstboot.main(boot, root) == 1
    assert (boot / "tls/server.key.invalid").exists()
    assert not (root / "etc/edgeq/tls/server.key").exists()


def test_password_file_needs_user_hash_lines(firstboot: ModuleType, boot: Path,
                                             root: Path) -> None:
    (boot / "edgeq.passwd").write_text("sensor-01 secret\n")

    assert firstboot.main(boot, root) == 1
    assert not (root / "etc/edgeq/passwd").exists()


# --- as the service runs it --------------------------------------------------------------

def test_cli_runs_on_the_standard_library_alone(sample_boot: Path, root: Path) -> None:
    """Debian's python3 runs it in the image: no site-packages (-E -s -S), no edgeq import
    (its own directory stays on the path, as when the service runs it)."""
    done = subprocess.run([sys.executable, "-E", "-s", "-S", str(FIRSTBOOT), "--boot-dir",
                           str(sample_boot), "--root-dir", str(root)],
                          capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "host name set to site-gw-07" in done.stdout
    assert (root / "etc/hostname").read_text() == "site-gw-07\n"


def test_live_run_warns_when_the_boot_partition_is_not_mounted(
        firstboot: ModuleType, boot: Path, root: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert firstboot.cli(["--live", "--boot-dir", str(boot), "--root-dir", str(root)]) == 0

    assert "WARNING: the boot partition is not mounted" in capsys.readouterr().out
