"""Boot the built SD card image under qemu-system-aarch64 and check that the gateway serves.

The card is copied (the built image stays untouched) and made larger, sample provisioning
files are put on its FAT partition with mtools (no mount needed), and qemu boots it on one of
two machines:

- `virt` (default): the image's own Debian kernel and initramfs from its root file system, a
  virtio disk and network card: the same root file system, fstab, systemd units and first-boot
  provisioning as on a Pi, only the board differs;
- `raspi3b`: qemu's Raspberry Pi 3 Model B. The kernel, initramfs and kernel command line are
  the ones the Pi's firmware would load from the card's FAT partition (as `config.txt` names
  them), with the device tree the firmware picks for a Pi 3 B (`bcm2837-rpi-3-b.dtb`, the
  upstream name, because of `upstream_kernel=1`); the card is the emulated SD card (the kernel's
  bcm2835 SD host driver), the network a USB Ethernet device on the Pi's USB host controller
  (dwc2), with a Raspberry Pi MAC address so the kernel names it eth0 as on the board. qemu does
  not run the GPU firmware itself (bootcode.bin, start.elf): it loads those three files in its
  place.

Then, over ports forwarded to 127.0.0.1 only:

- MQTT, with the image's default config: an anonymous 3.1.1 CONNECT is refused (CONNACK
  `20 02 00 05`), and one with the device user made at first boot (its password read over SSH
  from /etc/edgeq/device-credentials) is accepted (`20 02 00 00`);
- SSH: the provisioned key logs in as `admin`, a password login is refused;
- inside: provisioning applied (hostname), edgeq active, root file system grown, no failed units,
  the device password nowhere in the journal, the board's device tree model and root device.

What it must not do: touch the network beyond qemu's user-mode NAT (nothing is reachable from
the guest but the host's loopback forwards), or leave qemu running.

usage: qemu_boot_test.py [--machine virt|raspi3b] IMAGE ROOTFS WORKDIR
"""

from __future__ import annotations

import argparse
import re
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
# qemu's SD card must be a power of two in size: the card of the raspi3b boot is the next one.
PI_DTB = "bcm2837-rpi-3-b.dtb"  # what the firmware loads on a Pi 3 B with upstream_kernel=1
PI_MAC = "b8:27:eb:45:44:47"  # a Raspberry Pi Foundation address: universal, so the name is eth0
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


def prepare_disk(image: Path, work: Path, machine: str) -> Path:
    disk = work / "disk.img"
    shutil.copyfile(image, disk)
    size = GROW_BY
    if machine == "raspi3b":
        size = str(1 << (disk.stat().st_size - 1).bit_length())
    subprocess.run(["truncate", "-s", size, str(disk)], check=True)
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


@dataclass
class PiBoot:
    """What the Pi's firmware would load from the FAT partition, copied out of the card."""

    kernel: Path
    initrd: Path
    dtb: Path
    cmdline: str


def pi_boot_files(disk: Path, work: Path) -> PiBoot:
    """config.txt's `kernel=` and `initramfs` lines, the Pi 3 B device tree, cmdline.txt."""
    fw = work / "firmware"
    fw.mkdir()
    source = f"{disk}@@{BOOT_PARTITION_OFFSET}"

    def fetch(name: str) -> Path:
        subprocess.run(["mcopy", "-n", "-i", source, f"::{name}", str(fw / name)], check=True)
        return fw / name

    config = fetch("config.txt").read_text()
    settings = dict(re.findall(r"^\s*(\w+)\s*=\s*(\S+)", config, re.MULTILINE))
    initramfs = re.search(r"^\s*initramfs\s+(\S+)", config, re.MULTILINE)
    if settings.get("arm_64bit") != "1" or "kernel" not in settings or not initramfs:
        raise RuntimeError(f"config.txt does not boot a 64-bit kernel with an initramfs:\n{config}")
    return PiBoot(kernel=fetch(settings["kernel"]), initrd=fetch(initramfs.group(1)),
                  dtb=fetch(PI_DTB), cmdline=fetch("cmdline.txt").read_text().strip())


def qemu_command(machine: str, disk: Path, rootfs: Path, work: Path, console: Path,
                 forwards: str) -> list[str]:
    common = ["-display", "none", "-monitor", "none", "-netdev", f"user,id=n0,{forwards}"]
    if machine == "raspi3b":
        pi = pi_boot_files(disk, work)
        # The Pi 3's serial console (ttyS1 in cmdline.txt) is the mini UART: qemu's 2nd serial.
        return ["qemu-system-aarch64", "-M", "raspi3b", *common,
                "-serial", "null", "-serial", f"file:{console}",
                "-kernel", str(pi.kernel), "-initrd", str(pi.initrd), "-dtb", str(pi.dtb),
                "-append", pi.cmdline, "-drive", f"file={disk},if=sd,format=raw",
                "-device", f"usb-net,netdev=n0,mac={PI_MAC}"]
    kernel, initrd = kernel_and_initrd(rootfs)
    return ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
            *common, "-serial", f"file:{console}",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "root=LABEL=RASPIROOT rw rootwait console=ttyAMA0 net.ifnames=0",
            "-drive", f"file={disk},if=virtio,format=raw", "-device", "virtio-net-pci,netdev=n0"]


def start_qemu(machine: str, disk: Path, rootfs: Path, work: Path, key: Path) -> Guest:
    mqtt_port, ssh_port = free_port(), free_port()
    console = work / "console.log"
    forwards = f"hostfwd=tcp:127.0.0.1:{mqtt_port}-:1883,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    cmd = qemu_command(machine, disk, rootfs, work, console, forwards)
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


def ssh(guest: Guest, command: str, *, password: bool = False,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    auth = (["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]
            if password else ["-i", str(guest.key), "-o", "IdentitiesOnly=yes"])
    cmd = ["ssh", "-p", str(guest.ssh_port), "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
           "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", *auth, "admin@127.0.0.1", command]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


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
        "model": "tr -d '\\0' < /proc/device-tree/model",
        "root_device": "findmnt -no SOURCE /",
        "network": "ip -o -4 addr show scope global | awk '{print $2, $4}'",
        "journal": "findmnt -no FSTYPE -T /run/log/journal; ls /var/log/journal | wc -l",
        "tmp": "findmnt -no FSTYPE /tmp",
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
    password = device_password(guest)
    if not password:
        raise RuntimeError(f"no password in {CREDENTIALS} of the guest")
    return connack(guest.mqtt_port, connect_with_password("device", password))


def device_password(guest: Guest) -> str:
    lines = ssh(guest, f"sudo cat {CREDENTIALS}").stdout.splitlines()
    return next((ln.split(" = ", 1)[1] for ln in lines if ln.startswith("password = ")), "")


def update_in_guest(guest: Guest, debs: list[Path]) -> list[dict[str, str]]:
    """Install each package with apt on the running gateway; after each, what runs and whether
    a retained message published before the first one is still there (the store is kept)."""
    password = device_password(guest)
    mqtt_auth = f"-h 127.0.0.1 -u device -P '{password}' -t edgeq/update-test -q 1"
    ssh(guest, f"mosquitto_pub {mqtt_auth} -r -m kept-across-updates")
    subprocess.run(["scp", "-P", str(guest.ssh_port), "-i", str(guest.key), "-o",
                    "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o",
                    "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", *map(str, debs),
                    "admin@127.0.0.1:"], check=True, timeout=300)
    steps = []
    for deb in debs:
        began = time.monotonic()
        # The new release's venv is made under emulation: minutes, not seconds.
        done = ssh(guest, f"sudo DEBIAN_FRONTEND=noninteractive apt-get install -y "
                          f"--allow-downgrades ./{deb.name} 2>&1", timeout=1200)
        step = {"deb": deb.name, "rc": str(done.returncode), "output": done.stdout[-3000:],
                "seconds": f"{time.monotonic() - began:.0f}"}
        step["release"] = ssh(guest, "readlink /opt/edgeq/venv").stdout.strip()
        step["edgeq"] = ssh(guest, "systemctl is-active edgeq.service").stdout.strip()
        step["retained"] = ssh(guest, f"mosquitto_sub {mqtt_auth} -C 1 -W 20").stdout.strip()
        step["connack"] = connack(guest.mqtt_port, connect_with_password("device", password)).hex()
        log(f"update {deb.name}: rc={step['rc']} in {step['seconds']}s, {step['release']}, "
            f"edgeq {step['edgeq']}, retained {step['retained']!r}, CONNACK {step['connack']}")
        steps.append(step)
    return steps


@dataclass
class Result:
    connack: bytes = b""  # to an anonymous CONNECT
    device_connack: bytes = b""
    connack_after: float = 0.0
    password_login: str = ""
    facts: dict[str, str] = field(default_factory=dict)
    updates: list[dict[str, str]] = field(default_factory=list)


def boot_and_check(image: Path, rootfs: Path, work: Path, timeout: float = 900,
                   machine: str = "virt", updates: list[Path] | None = None) -> Result:
    """Everything above in order (then the `updates`, edgeq packages, with apt); qemu is
    stopped whatever happens."""
    work.mkdir(parents=True, exist_ok=True)
    disk = prepare_disk(image, work, machine)
    key = make_key(work)
    copy_to_boot_partition(disk, sample_boot_files(work, key))
    guest = start_qemu(machine, disk, rootfs, work, key)
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
        if updates:
            result.updates = update_in_guest(guest, updates)
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
    parser.add_argument("--machine", choices=["virt", "raspi3b"], default="virt")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    try:
        result = boot_and_check(args.image, args.rootfs, args.work, args.timeout, args.machine)
    except (TimeoutError, RuntimeError) as e:
        log(f"FAILED: {e}; console: {args.work / 'console.log'}")
        return 1
    log(f"password login: {result.password_login}")
    for name, value in result.facts.items():
        log(f"{name}: {value}")
    ok = (result.connack == CONNACK_NOT_AUTHORIZED and result.device_connack == CONNACK_ACCEPTED
          and result.facts.get("edgeq") == "active"
          and result.facts.get("secret_in_journal") == "0")
    if args.machine == "raspi3b":
        ok = ok and result.facts.get("model", "").startswith("Raspberry Pi 3")
    log("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
