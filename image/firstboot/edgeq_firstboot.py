"""First-boot provisioning of the edgeq image from files on the Raspberry Pi boot partition.

A person writes a few files onto the FAT boot partition of a freshly flashed card (any laptop
can) and boots; this module, run by `edgeq-firstboot.service` before the network, sshd and
edgeq start, validates each file, installs it into the root file system and deletes it from
the boot partition, because that partition is readable by anyone holding the card. It runs at
every boot, so a file dropped there later is applied at the next boot. The files:

    edgeq.toml        -> /etc/edgeq/edgeq.toml
    hostname          -> /etc/hostname, /etc/hosts
    wifi.toml         -> /etc/wpa_supplicant/wpa_supplicant-wlan0.conf (passphrase hashed)
    wpa_supplicant.conf  (the Raspberry Pi OS habit) -> the same file, as written
    authorized_keys   -> ~admin/.ssh/authorized_keys (the only way to log in)
    tls/*.crt|*.pem|*.key -> /etc/edgeq/tls/
    edgeq.passwd      -> /etc/edgeq/passwd   (made with `edgeq passwd`)
    edgeq.acl         -> /etc/edgeq/acl

Every file edgeq reads (edgeq.toml, the password file, the ACL, TLS files through the
config's listeners) is checked with `edgeq check-config` of the image's edgeq, the loaders
`edgeq serve` uses, before it is installed; edgeq.toml last, against the files as they will be.
When no password file exists (the first boot of the image), a device user with a random
password is created; its password goes to a root-only file whose path is printed, never the
password itself. After a run that changed anything, the installed config is checked once more.

A file that fails validation changes nothing: it is renamed `<name>.invalid` on the boot
partition, the reason goes to the console, the journal and `edgeq-firstboot.log` beside it,
the other files are still applied, and edgeq starts with the configuration it already had
(the image's safe default on a first boot). The exit status is 1 when anything was rejected,
so `systemctl --failed` shows it.

What it must not do: import edgeq or anything outside the standard library (it runs with
Debian's python3; `edgeq_tools` runs the venv's edgeq in subprocesses), write anywhere but
under the root directory it is given (the running hostname is set only with `--live`), log
anything secret (passwords, key material), or stop at the first bad file.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeq_tools import (
    CREDENTIALS_FILE,
    DEVICE_USER,
    PASSWORD_FILE,
    Edgeq,
    EdgeqUnavailable,
    anonymous_network_listeners,
    auth_file_problems,
    config_problems,
    credentials_text,
    new_password,
)
from wifi_config import WifiError, wpa_config

ADMIN_USER = "admin"
SERVICE_GROUP = "edgeq"
LOG_NAME = "edgeq-firstboot.log"
EDGEQ_CONF = "etc/edgeq/edgeq.toml"
WPA_CONF = "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")
TLS_SUFFIXES = (".crt", ".pem", ".key")



class BadFileError(Exception):
    """A boot-partition file that is not applied; the message says why and what to do."""


@dataclass
class Report:
    """What one run did, for the console, the journal and the log on the boot partition."""

    lines: list[str] = field(default_factory=list)
    errors: int = 0

    def info(self, text: str) -> None:
        self._emit(6, "", text)

    def warning(self, text: str) -> None:
        self._emit(4, "WARNING: ", text)

    def error(self, text: str) -> None:
        self.errors += 1
        self._emit(3, "ERROR: ", text)

    def _emit(self, priority: int, label: str, text: str) -> None:
        self.lines.append(f"{label}{text}")
        # Under systemd, stdout is a journal stream: a <N> prefix sets the journal priority.
        prefix = f"<{priority}>" if os.environ.get("JOURNAL_STREAM") else ""
        print(f"{prefix}edgeq-firstboot: {label}{text}", flush=True)


@dataclass
class Context:
    """Where to read from and write to; `live` also changes the running system."""

    boot: Path
    root: Path
    report: Report
    edgeq: Edgeq | None = None  # None: TOML syntax and file shapes only (no edgeq to ask)
    live: bool = False
    changed: bool = False

    def target(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")


# --- writing into the root file system ------------------------------------------------------

def lookup_id(root: Path, database: str, name: str) -> int | None:
    """The uid (database "passwd") or gid ("group") of `name` in the image, not on this host."""
    try:
        text = (root / "etc" / database).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[0] == name and parts[2].isdigit():
            return int(parts[2])
    return None


def set_owner(ctx: Context, path: Path, user: str | None, group: str | None) -> None:
    """chown by the image's names; skipped when not root (unit tests) or the name is unknown."""
    if os.geteuid() != 0:
        return
    uid = lookup_id(ctx.root, "passwd", user) if user else None
    gid = lookup_id(ctx.root, "group", group) if group else None
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def write_file(ctx: Context, relative: str, data: bytes, mode: int, *,
               user: str | None = None, group: str | None = None) -> Path:
    """Replace a file atomically with its final mode and owner already set."""
    path = ctx.target(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.firstboot")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    set_owner(ctx, tmp, user, group)
    os.replace(tmp, path)
    ctx.changed = True
    return path


def ensure_dir(ctx: Context, relative: str, mode: int, *, user: str | None = None,
               group: str | None = None) -> Path:
    path = ctx.target(relative)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    set_owner(ctx, path, user, group)
    return path


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


# --- edgeq.toml -----------------------------------------------------------------------------

def toml_error(path: Path) -> str | None:
    """The TOML syntax error in `path`, with line and column, or None when it parses."""
    try:
        tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:
        return f"{path}: not valid TOML: {e}"
    return None


def edgeq_problems(ctx: Context, check: Callable[[Edgeq], list[str]]) -> list[str]:
    """What the image's edgeq says (`check(edgeq)`); none without one. An edgeq that cannot
    run refuses everything: a file nobody could check is not installed."""
    if ctx.edgeq is None:
        return []
    try:
        return check(ctx.edgeq)
    except EdgeqUnavailable as e:
        return [f"not checked: {e}"]


def apply_edgeq_config(ctx: Context, source: Path) -> None:
    text = read_text(source)
    problems = [p for p in [toml_error(source)] if p] or edgeq_problems(
        ctx, lambda edgeq: config_problems(edgeq, text, ctx.root, str(source)))
    if problems:
        raise BadFileError("\n    ".join(problems) + "\n    edgeq starts with the configuration "
                           f"it already has (/{EDGEQ_CONF}); fix the file, rename it back to "
                           f"{source.name} and reboot")
    for address in anonymous_network_listeners(tomllib.loads(text)):
        ctx.report.warning(f"{source}: anonymous clients are accepted on {address}: anyone on "
                           "the network may publish and subscribe; set [auth] allow_anonymous "
                           "= false and password_file = \"/etc/edgeq/passwd\"")
    write_file(ctx, EDGEQ_CONF, source.read_bytes(), 0o640, user="root",
               group=SERVICE_GROUP)
    ctx.report.info("installed /etc/edgeq/edgeq.toml")


# --- hostname -------------------------------------------------------------------------------

def parse_hostname(text: str, source: Path) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    name = lines[0].lower() if lines else ""
    if len(lines) != 1 or not HOSTNAME_RE.fullmatch(name):
        raise BadFileError(f"{source}: expected one host name of letters, digits and '-' (at most "
                           f"63, not starting or ending with '-'), found {text.strip()!r}")
    return name


def hosts_with(hosts: str, name: str) -> str:
    """/etc/hosts with its 127.0.1.1 line naming `name` (added when missing)."""
    kept = [ln for ln in hosts.splitlines() if not ln.startswith("127.0.1.1")]
    return "\n".join([*kept, f"127.0.1.1\t{name}"]) + "\n"


def apply_hostname(ctx: Context, source: Path) -> None:
    name = parse_hostname(read_text(source), source)
    write_file(ctx, "etc/hostname", f"{name}\n".encode(), 0o644)
    hosts = ctx.target("etc/hosts")
    current = hosts.read_text() if hosts.exists() else "127.0.0.1\tlocalhost\n"
    write_file(ctx, "etc/hosts", hosts_with(current, name).encode(), 0o644)
    if ctx.live:
        socket.sethostname(name)
    ctx.report.info(f"host name set to {name} (reachable as {name}.local)")


# --- Wi-Fi ----------------------------------------------------------------------------------

def apply_wifi(ctx: Context, source: Path) -> None:
    try:
        wifi = tomllib.loads(read_text(source))
    except tomllib.TOMLDecodeError as e:
        raise BadFileError(f"{source}: not valid TOML: {e}") from None
    try:
        config = wpa_config(wifi, source)
    except WifiError as e:
        raise BadFileError(str(e)) from None
    write_file(ctx, WPA_CONF, config.encode(), 0o600, user="root", group="root")
    count = config.count("network={")
    ctx.report.info(f"Wi-Fi configured for {count} network(s), country {wifi['country']}")


def apply_wpa_supplicant_conf(ctx: Context, source: Path) -> None:
    text = read_text(source)
    if "network={" not in text.replace(" ", ""):
        raise BadFileError(f"{source}: no network={{...}} block; see wpa_supplicant.conf(5)")
    write_file(ctx, WPA_CONF, text.encode(), 0o600, user="root", group="root")
    ctx.report.info("Wi-Fi configured from wpa_supplicant.conf")


# --- SSH ------------------------------------------------------------------------------------

def is_public_key_line(line: str) -> bool:
    """A key type followed by its data, possibly after options such as `from="10.0.0.0/8"`."""
    words = line.split()
    return any(w in KEY_TYPES and i + 1 < len(words) for i, w in enumerate(words))


def admin_home(root: Path) -> str:
    """The admin user's home directory as the image's /etc/passwd has it."""
    try:
        entries = (root / "etc/passwd").read_text().splitlines()
    except OSError:
        entries = []
    for line in entries:
        parts = line.split(":")
        if parts[0] == ADMIN_USER and len(parts) > 5:
            return parts[5]
    return f"/home/{ADMIN_USER}"


def apply_authorized_keys(ctx: Context, source: Path) -> None:
    lines = [ln.strip() for ln in read_text(source).splitlines()]
    keys = [ln for ln in lines if ln and not ln.startswith("#") and is_public_key_line(ln)]
    # Line numbers only: a skipped line may be part of a private key, never to be logged.
    skipped = [str(i) for i, ln in enumerate(lines, start=1)
               if ln and not ln.startswith("#") and ln not in keys]
    if not keys:
        raise BadFileError(f"{source}: no public key found (expected lines such as "
                           "'ssh-ed25519 AAAA... you@laptop'; a private key does not belong here)")
    if skipped:
        ctx.report.warning(f"{source}: skipped line(s) {', '.join(skipped)}: not public keys")
    home = admin_home(ctx.root)
    ensure_dir(ctx, f"{home}/.ssh", 0o700, user=ADMIN_USER, group=ADMIN_USER)
    write_file(ctx, f"{home}/.ssh/authorized_keys", ("\n".join(keys) + "\n").encode(), 0o600,
               user=ADMIN_USER, group=ADMIN_USER)
    ctx.report.info(f"{len(keys)} SSH key(s) installed for user {ADMIN_USER}")


# --- edgeq secrets: TLS, password file, ACL -------------------------------------------------

def check_pem(path: Path) -> bytes:
    data = read_text(path)
    wanted = "PRIVATE KEY-----" if path.suffix == ".key" else "-----BEGIN "
    if "-----BEGIN " not in data or wanted not in data:
        kind = "a PEM private key" if path.suffix == ".key" else "PEM (-----BEGIN ...)"
        raise BadFileError(f"{path}: expected {kind}")
    return data.encode()


def apply_tls_file(ctx: Context, source: Path) -> None:
    ensure_dir(ctx, "etc/edgeq/tls", 0o750, user="root", group=SERVICE_GROUP)
    write_file(ctx, f"etc/edgeq/tls/{source.name}", check_pem(source), 0o640, user="root",
               group=SERVICE_GROUP)
    ctx.report.info(f"installed /etc/edgeq/tls/{source.name}")


def check_password_file(path: Path) -> bytes:
    text = read_text(path)
    entries = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    bad = [i + 1 for i, ln in enumerate(text.splitlines())
           if ln.strip() and not ln.startswith("#") and ":" not in ln]
    if not entries or bad:
        where = f"line {bad[0]} is not" if bad else "the file is empty"
        raise BadFileError(f"{path}: expected 'user:hash' lines made with `edgeq passwd` "
                           f"({where})")
    return text.encode()


def refuse_auth_file(ctx: Context, key: str, source: Path) -> None:
    problems = edgeq_problems(ctx, lambda edgeq: auth_file_problems(edgeq, key, source))
    if problems:
        raise BadFileError("\n    ".join(problems) + "\n    edgeq would refuse to start with "
                           "it; nothing was installed")


def apply_password_file(ctx: Context, source: Path) -> None:
    data = check_password_file(source)
    refuse_auth_file(ctx, "password_file", source)
    write_file(ctx, PASSWORD_FILE, data, 0o640, user="root", group=SERVICE_GROUP)
    ctx.report.info(f"installed /{PASSWORD_FILE} (auth.password_file of the default edgeq.toml)")


def apply_acl_file(ctx: Context, source: Path) -> None:
    data = read_text(source).encode()
    refuse_auth_file(ctx, "acl_file", source)
    write_file(ctx, "etc/edgeq/acl", data, 0o640, user="root", group=SERVICE_GROUP)
    ctx.report.info("installed /etc/edgeq/acl (set auth.acl_file in edgeq.toml to use it)")


def ensure_device_user(ctx: Context) -> None:
    """No password file yet (the image's first boot): one user for the devices, with a random
    password kept in a root-only file. The journal gets the file's path, never the password."""
    if ctx.edgeq is None or ctx.target(PASSWORD_FILE).exists():
        return
    password = new_password()
    try:
        hashed = ctx.edgeq.hash_password(password)
    except EdgeqUnavailable as e:
        ctx.report.error(f"no MQTT user could be created ({e}); edgeq will refuse to start "
                         f"until /{PASSWORD_FILE} exists (`edgeq passwd -c`)")
        return
    write_file(ctx, CREDENTIALS_FILE, credentials_text(password).encode(), 0o600, user="root",
               group="root")
    write_file(ctx, PASSWORD_FILE, f"{DEVICE_USER}:{hashed}\n".encode(), 0o640, user="root",
               group=SERVICE_GROUP)
    ctx.report.info(f"created MQTT user '{DEVICE_USER}' in /{PASSWORD_FILE}; its password is in "
                    f"/{CREDENTIALS_FILE} (root only: sudo cat /{CREDENTIALS_FILE})")


def check_installed_config(ctx: Context) -> None:
    """The config edgeq will start with, and every file it names, as `edgeq serve` reads them."""
    try:
        text = read_text(ctx.target(EDGEQ_CONF))
    except OSError as e:
        ctx.report.error(f"/{EDGEQ_CONF}: {e.strerror}: edgeq will refuse to start")
        return
    for problem in edgeq_problems(ctx, lambda edgeq: config_problems(
            edgeq, text, ctx.root, f"/{EDGEQ_CONF}")):
        ctx.report.error(f"{problem} (edgeq will refuse to start: fix it and reboot, or "
                         "`sudo systemctl restart edgeq` once fixed)")


# --- the run --------------------------------------------------------------------------------

Step = Callable[[Context, Path], None]

# In this order: Wi-Fi before a possibly ignored wpa_supplicant.conf; edgeq.toml comes after
# all of these and the TLS files (see `run`), so it is checked against the files it names.
CONFIG_FILE = "edgeq.toml"
STEPS: tuple[tuple[str, Step], ...] = (
    ("hostname", apply_hostname),
    ("wifi.toml", apply_wifi),
    ("wpa_supplicant.conf", apply_wpa_supplicant_conf),
    ("authorized_keys", apply_authorized_keys),
    ("edgeq.passwd", apply_password_file),
    ("edgeq.acl", apply_acl_file),
)


def pending_files(boot: Path) -> list[tuple[Path, Step]]:
    """The provisioning files present on the boot partition, each with its step."""
    found = [(boot / name, step) for name, step in STEPS if (boot / name).is_file()]
    tls = boot / "tls"
    if tls.is_dir():
        found += [(p, apply_tls_file) for p in sorted(tls.iterdir())
                  if p.is_file() and p.suffix in TLS_SUFFIXES]
    return found


def reject(ctx: Context, source: Path, reason: str) -> None:
    """Keep the rejected file (renamed, so it is not retried every boot) and say why."""
    ctx.report.error(reason)
    try:
        source.replace(source.with_name(source.name + ".invalid"))
    except OSError as e:
        ctx.report.warning(f"{source}: could not rename to {source.name}.invalid: {e}")


def consume(ctx: Context, source: Path) -> None:
    """Applied files leave the boot partition: any card reader can read it."""
    try:
        source.unlink()
        if source.parent.name == "tls" and not any(source.parent.iterdir()):
            source.parent.rmdir()
    except OSError as e:
        ctx.report.warning(f"{source}: applied but could not be removed: {e}")


def apply_one(ctx: Context, source: Path, step: Step) -> None:
    try:
        step(ctx, source)
    except BadFileError as e:
        reject(ctx, source, str(e))
    except OSError as e:
        reject(ctx, source, f"{source}: could not be applied: {e}")
    else:
        consume(ctx, source)


def write_log(ctx: Context) -> None:
    text = "edgeq first-boot provisioning, last run:\n" + "\n".join(ctx.report.lines) + "\n"
    try:
        (ctx.boot / LOG_NAME).write_text(text)
    except OSError as e:
        print(f"edgeq-firstboot: could not write {ctx.boot / LOG_NAME}: {e}", file=sys.stderr)


def run(ctx: Context) -> int:
    """Apply every pending file, the device user when there is no password file, then
    edgeq.toml; check what edgeq will start with. 0 when all went well, 1 otherwise."""
    pending = pending_files(ctx.boot)
    names = {source.name for source, _ in pending}
    for source, step in pending:
        if source.name == "wpa_supplicant.conf" and "wifi.toml" in names:
            reject(ctx, source, f"{source}: ignored because wifi.toml is present; keep only one")
        else:
            apply_one(ctx, source, step)
    ensure_device_user(ctx)
    if (ctx.boot / CONFIG_FILE).is_file():
        apply_one(ctx, ctx.boot / CONFIG_FILE, apply_edgeq_config)
        pending.append((ctx.boot / CONFIG_FILE, apply_edgeq_config))
    if ctx.changed:
        check_installed_config(ctx)
    if pending:
        write_log(ctx)
    elif not ctx.changed:
        ctx.report.info(f"nothing to provision in {ctx.boot}")
    return 1 if ctx.report.errors else 0


def main(boot_dir: str | Path, root_dir: str | Path, *, live: bool = False,
         edgeq: Edgeq | None = None) -> int:
    """Provision the root file system `root_dir` from the files in `boot_dir`, asking `edgeq`
    (the image's) whether edgeq would accept each file it reads."""
    ctx = Context(boot=Path(boot_dir), root=Path(root_dir), report=Report(), edgeq=edgeq,
                  live=live)
    return run(ctx)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boot-dir", default="/boot/firmware", type=Path)
    parser.add_argument("--root-dir", default="/", type=Path)
    parser.add_argument("--edgeq-python", type=Path,
                        help="the edgeq venv's python: files are checked with its "
                             "`edgeq check-config`, and the device user is made with it")
    parser.add_argument("--live", action="store_true",
                        help="also change the running system (the host name)")
    args = parser.parse_args(argv)
    edgeq = Edgeq(args.edgeq_python) if args.edgeq_python else None
    if args.live and not os.path.ismount(args.boot_dir):
        print(f"edgeq-firstboot: WARNING: the boot partition is not mounted on {args.boot_dir}; "
              "its files cannot be applied", flush=True)
    return main(args.boot_dir, args.root_dir, live=args.live, edgeq=edgeq)


if __name__ == "__main__":
    sys.exit(cli())
