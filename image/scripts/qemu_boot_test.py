"""Boot the built SD card image under qemu-system-aarch64 and check that the gateway serves.

The card is copied (the built image stays untouched) and made 1 GiB larger, sample
provisioning files are put on its FAT partition with mtools (no mount needed), and qemu's
`virt` machine boots it with the image's own Debian kernel and initramfs: the same root
file system, fstab, systemd units and first-boot provisioning as on a Pi, only the board
differs. Then, over ports forwarded to 127.0.0.1 only:

- MQTT, with the image's default config: an anonymous 3.1.1 CONNECT is refused (CONNACK
  `20 02 00 05`), and one with the device user made at first boot (its password read over SSH
  from /etc/edgeq/device-credentials) is accepted (`20 02 00 00`);
- SSH: the provisioned key logs in as `admin`, a password login is refused;
- inside: provisioning applied (hostname), edgeq active, root file system grown, no failed units,
  the device password nowhere in the journal.

What it must not do: touch the network beyond qemu's user-mode NAT (nothing is reachable from
the guest but the host's loopback forwards), or leave qemu running.

usage: qemu_boot_test.py IMAGE ROOTFS WORKDIR
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CONNECT = bytes.fromhex("100c00044d5154540402003c0000")  # 3.1.1, clean session, keepalive 60
CONNACK_ACCEPTED = bytes.fromhex("20020000")
CONNACK_NOT_AUTHORIZED = bytes.fromhex("20020005")
BOOT_PARTITION_OFFSET = "4M"  # genimage.cfg.in: partition boot { offset = 4M }
GROW_BY = "+1G"
HOSTNAME = "edgeq-qemu"
CREDENTIALS = "/etc/edgeq/device-credentials"
# Counts the lines of this boot's journal holding the device password (expected: 0).
SECRET_IN_JOURNAL = ("sudo sh -c 'sed -n \"s/^password = //p\" " + CREDENTIALS + " > /run/pw; "
                     "journalctl -b -o cat --no-pager | grep -c -F -f /run/pw; rm -f /run/pw'")


@dataclass
class Guest:
    """A running qemu with its console log and forwarded ports."""

    proc: subprocess.Popen[bytes]
    console: Path
    mqtt_port: int
    ssh_port: int
    key: Path
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(text: str) -> None:
    print(f"[boot-test] {text}", flush=True)


def prepare_disk(image: Path, work: Path) -> Path:
    disk = work / "disk.img"
    shutil.copyfile(image, disk)
    subprocess.run(["truncate", "-s", GROW_BY, str(disk)], check=True)
    return disk


def make_key(work: Path) -> Path:
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "boot-test",
                    "-f", str(key)], check=True)
    return key


def sample_boot_files(work: Path, key: Path) -> list[Path]:
    files = work / "bootfiles"
    files.mkdir()
    (files / "hostname").write_text(HOSTNAME + "\n")
    shutil.copyfile(key.with_suffix(".pub"), files / "authorized_keys")
    return sorted(files.iterdir())


def copy_to_boot_partition(disk: Path, files: list[Path]) -> None:
    """mtools writes into the FAT partition at its offset inside the disk image."""
    target = f"{disk}@@{BOOT_PARTITION_OFFSET}"
    subprocess.run(["mcopy", "-o", "-i", target, *map(str, files), "::"], check=True)


def kernel_and_initrd(rootfs: Path) -> tuple[Path, Path]:
    """The newest kernel of the image and its own initramfs."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise SystemExit(f"no kernel in {rootfs}/boot")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.exists():
        raise SystemExit(f"no {initrd}")
    return kernels[-1], initrd


def start_qemu(disk: Path, rootfs: Path, work: Path, key: Path) -> Guest:
    kernel, initrd = kernel_and_initrd(rootfs)
    mqtt_port, ssh_port = free_port(), free_port()
    console = work / "console.log"
    forwards = f"hostfwd=tcp:127.0.0.1:{mqtt_port}-:1883,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
           "-display", "none", "-monitor", "none", "-serial", f"file:{console}",
           "-kernel", str(kernel), "-initrd", str(initrd),
           "-append", "root=LABEL=RASPIROOT rw rootwait console=ttyAMA0 net.ifnames=0",
           "-drive", f"file={disk},if=virtio,format=raw",
           "-netdev", f"user,id=n0,{forwards}", "-device", "virtio-net-pci,netdev=n0"]
    log(" ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(work / "qemu.err").open("wb"))
    return Guest(proc, console, mqtt_port, ssh_port, key)


def _string(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def connect_with_password(username: str, password: str) -> bytes:
    """A 3.1.1 CONNECT (clean session, keepalive 60) with user name and password."""
    body = _string("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big") + _string("boot-test")
    body += _string(username) + _string(password)
    return bytes([0x10, len(body)]) + body


def connack(port: int, connect: bytes = CONNECT) -> bytes:
    """The first 4 bytes answering `connect`; b"" while nothing listens behind the forward."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(connect)
            s.settimeout(10)
            return s.recv(4)
    except OSError:
        return b""


def edgeq_failure(guest: Guest) -> str | None:
    """edgeq's journal when systemd gave up on it (seen over SSH), else None."""
    state = ssh(guest, "systemctl is-failed edgeq.service").stdout.strip()
    if state != "failed":
        return None
    return ssh(guest, "sudo journalctl -u edgeq.service -n 40 --no-pager").stdout


def wait_for_connack(guest: Guest, timeout: float) -> bytes:
    checked = 0.0
    while guest.elapsed() < timeout:
        if guest.proc.poll() is not None:
            raise RuntimeError(f"qemu exited with {guest.proc.returncode}")
        answer = connack(guest.mqtt_port)
        if answer:
            return answer
        if guest.elapsed() - checked > 30:
            checked = guest.elapsed()
            journal = edgeq_failure(guest)
            if journal:
                raise RuntimeError(f"edgeq.service failed in the guest:\n{journal}")
        time.sleep(3)
    raise TimeoutError(f"no CONNACK within {timeout:.0f}s")


def ssh(guest: Guest, command: str, *, password: bool = False) -> subprocess.CompletedProcess[str]:
    auth = (["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]
            if password else ["-i", str(guest.key), "-o", "IdentitiesOnly=yes"])
    cmd = ["ssh", "-p", str(guest.ssh_port), "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
           "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", *auth, "admin@127.0.0.1", command]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def wait_for_ssh(guest: Guest, timeout: float) -> None:
    while guest.elapsed() < timeout:
        if ssh(guest, "true").returncode == 0:
            return
        time.sleep(3)
    raise TimeoutError(f"no SSH login within {timeout:.0f}s")


def inspect(guest: Guest) -> dict[str, str]:
    """Facts from inside the booted gateway, one command each."""
    commands = {
        "hostname": "hostname",
        "edgeq": "systemctl is-active edgeq.service",
        "firstboot": "systemctl is-active edgeq-firstboot.service",
        "failed": "systemctl list-units --failed --plain --no-legend",
        "root_size": "df -B1M --output=size / | tail -1",
        "sshd_password": "sudo sshd -T | grep -i '^passwordauthentication'",
        "edgeq_user": "ps -o user= -C edgeq",
        "boot_log": "sudo cat /boot/firmware/edgeq-firstboot.log",
        "secret_in_journal": SECRET_IN_JOURNAL,
        "initramfs_fsck": "lsinitramfs /boot/initrd.img-$(uname -r) | grep -c 'fsck.ext4$'",
    }
    return {name: ssh(guest, cmd).stdout.strip() for name, cmd in commands.items()}


def shutdown(guest: Guest) -> None:
    ssh(guest, "sudo systemctl poweroff")
    try:
        guest.proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        guest.proc.kill()
        guest.proc.wait()


def device_connack(guest: Guest) -> bytes:
    """CONNACK for the device user, with the password first boot wrote into the guest."""
    lines = ssh(guest, f"sudo cat {CREDENTIALS}").stdout.splitlines()
    password = next((ln.split(" = ", 1)[1] for ln in lines if ln.startswith("password = ")), "")
    if not password:
        raise RuntimeError(f"no password in {CREDENTIALS} of the guest")
    return connack(guest.mqtt_port, connect_with_password("device", password))


@dataclass
class Result:
    connack: bytes = b""  # to an anonymous CONNECT
    device_connack: bytes = b""
    connack_after: float = 0.0
    password_login: str = ""
    facts: dict[str, str] = field(default_factory=dict)


def boot_and_check(image: Path, rootfs: Path, work: Path, timeout: float = 900) -> Result:
    """Everything above in order; qemu is stopped whatever happens."""
    work.mkdir(parents=True, exist_ok=True)
    disk = prepare_disk(image, work)
    key = make_key(work)
    copy_to_boot_partition(disk, sample_boot_files(work, key))
    guest = start_qemu(disk, rootfs, work, key)
    result = Result()
    try:
        result.connack = wait_for_connack(guest, timeout)
        result.connack_after = guest.elapsed()
        log(f"CONNACK {result.connack.hex()} after {result.connack_after:.0f}s")
        wait_for_ssh(guest, timeout)
        result.device_connack = device_connack(guest)
        log(f"CONNACK for the device user: {result.device_connack.hex()}")
        denied = ssh(guest, "true", password=True)
        result.password_login = f"rc={denied.returncode} {denied.stderr.strip()}"
        result.facts = inspect(guest)
        shutdown(guest)
    finally:
        if guest.proc.poll() is None:
            guest.proc.kill()
            guest.proc.wait()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("rootfs", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    try:
        result = boot_and_check(args.image, args.rootfs, args.work, args.timeout)
    except (TimeoutError, RuntimeError) as e:
        log(f"FAILED: {e}; console: {args.work / 'console.log'}")
        return 1
    log(f"password login: {result.password_login}")
    for name, value in result.facts.items():
        log(f"{name}: {value}")
    ok = (result.connack == CONNACK_NOT_AUTHORIZED and result.device_connack == CONNACK_ACCEPTED
          and result.facts.get("edgeq") == "active"
          and result.facts.get("secret_in_journal") == "0")
    log("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
