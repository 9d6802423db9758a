"""The image, built for real (`make test-slow`): the arm64 root file system is made by
`make -C image` in a fresh `git clone` of the last commit (so a file that exists only in a
working tree cannot hide a missing step), inspected from the outside and by running its own
programs under qemu-user-static, then the SD card image is booted under qemu-system-aarch64:
anonymous clients are refused, the device user made at first boot is accepted.

Needs root, Debian's archive and PyPI. The build directory is image/out/ (or $EDGEQ_IMAGE_OUT);
every stage is rebuilt, since the clone's files are all new. 15 to 30 minutes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.image.conftest import (
    BROKEN_SERVE,
    IMAGE,
    SAMPLES,
    broken_wheels,
    build_deb,
    make_tls_pair,
)

OUT = Path(os.environ.get("EDGEQ_IMAGE_OUT", IMAGE / "out"))
ROOTFS = OUT / "rootfs"
CARD = OUT / "edgeq-rpi-arm64.img"
VENV_PYTHON = "/opt/edgeq/venv/bin/python"
ENABLED = ["edgeq.service", "edgeq-firstboot.service", "edgeq-growroot.service",
           "edgeq-ssh-hostkeys.service", "ssh.service", "systemd-networkd.service",
           "systemd-resolved.service", "systemd-timesyncd.service"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make image` in a fresh clone of the last commit: every stage up to the SD card."""
    clone = tmp_path_factory.mktemp("fresh-clone") / "edgeq"
    subprocess.run(["git", "clone", "--quiet", str(IMAGE.parent), str(clone)], check=True)
    done = subprocess.run(["make", "-C", str(clone / "image"), f"OUT={OUT}", "image"],
                          capture_output=True, text=True, check=False)
    (OUT / "last-build.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ROOTFS


def in_chroot(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run an arm64 program of the image (via binfmt_misc + qemu-user-static)."""
    script = f'. {IMAGE}/scripts/lib.sh; in_chroot "$@"'
    return subprocess.run(["bash", "-c", script, "in_chroot", str(root), *command],
                          capture_output=True, text=True, timeout=600, check=False)


# --- inside the root file system ---------------------------------------------------------

def test_edgeq_venv_imports_on_arm64(built: Path) -> None:
    code = ("import platform, gateway, gateway.cli, gateway.config, msgspec, "
            "uvloop, textual, gpiozero, lgpio, argon2, wsproto, paho.mqtt.client, "
            "systemd.daemon; print(platform.machine(), gateway.__version__)")
    # lgpio leaves notification files in its working directory: keep them out of the image.
    done = in_chroot(built, "env", "LG_WD=/tmp", VENV_PYTHON, "-c", code)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "aarch64"


def test_edgeq_command_runs(built: Path) -> None:
    done = in_chroot(built, "/usr/bin/edgeq", "--help")

    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout


def test_units_are_enabled(built: Path) -> None:
    for unit in ENABLED:
        done = subprocess.run(["systemctl", f"--root={built}", "is-enabled", unit],
                              capture_output=True, text=True, check=False)
        assert done.stdout.strip() == "enabled", f"{unit}: {done.stdout}{done.stderr}"
    masked = subprocess.run(["systemctl", f"--root={built}", "is-enabled",
                             "systemd-firstboot.service"], capture_output=True, text=True,
                            check=False)
    assert masked.stdout.strip() == "masked"


def test_unit_files_verify(built: Path) -> None:
    done = subprocess.run(["systemd-analyze", f"--root={built}", "verify",
                           "edgeq-firstboot.service", "edgeq-growroot.service",
                           "edgeq-ssh-hostkeys.service"],
                          capture_output=True, text=True, check=False)
    ours = [ln for ln in done.stderr.splitlines() if "edgeq" in ln]
    assert done.returncode == 0 and not ours, done.stderr


def test_users_groups_and_no_passwords(built: Path) -> None:
    passwd = (built / "etc/passwd").read_text()
    groups = {ln.split(":")[0]: ln.split(":")[3].split(",")
              for ln in (built / "etc/group").read_text().splitlines()}
    shadow = {ln.split(":")[0]: ln.split(":")[1]
              for ln in (built / "etc/shadow").read_text().splitlines()}

    assert "\nedgeq:" in passwd and "\nadmin:" in passwd
    assert {"edgeq", "admin"} <= set(groups["gpio"])
    assert shadow["root"] == "*" and shadow["admin"] == "*"
    assert all(not h or h[0] in "*!" for h in shadow.values()), "an account has a password"
    sshd = (built / "etc/ssh/sshd_config.d/10-edgeq.conf").read_text()
    assert "PasswordAuthentication no" in sshd


def test_no_per_device_identity_is_shipped(built: Path) -> None:
    assert not list((built / "etc/ssh").glob("ssh_host_*"))
    assert (built / "etc/machine-id").read_text() == ""


def test_initramfs_can_check_the_root_file_system(built: Path) -> None:
    """fsck.ext4 in the initramfs: the root is checked before it is mounted read-write."""
    initrd = sorted((built / "boot").glob("initrd.img-*"))[-1]
    done = in_chroot(built, "lsinitramfs", f"/boot/{initrd.name}")

    assert done.returncode == 0, done.stderr
    files = {Path(line).name for line in done.stdout.split()}
    assert {"fsck", "fsck.ext4", "logsave"} <= files
    assert "Couldn't identify type of root file system" not in (OUT / "last-build.log").read_text()


def test_image_defaults_are_the_safe_ones(built: Path) -> None:
    config = (built / "etc/edgeq/edgeq.toml").read_text()
    assert "allow_anonymous = false" in config and 'synchronous = "full"' in config
    assert not (built / "etc/edgeq/passwd").exists()  # made at first boot, one per gateway
    for module in ("edgeq_firstboot.py", "edgeq_tools.py", "wifi_config.py"):
        assert (built / "usr/lib/edgeq-image" / module).exists(), module


def test_pi_boot_files(built: Path) -> None:
    fw = built / "boot/firmware"
    cmdline = (fw / "cmdline.txt").read_text()

    assert "root=LABEL=RASPIROOT" in cmdline and "console=tty0" in cmdline
    assert "arm_64bit=1" in (fw / "config.txt").read_text()
    for name in ("bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2837-rpi-3-a-plus.dtb",
                 "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb",
                 "bcm2837-rpi-zero-2-w.dtb", "start4.elf", "fixup4.dat", "bootcode.bin"):
        assert (fw / name).exists(), name
    assert list(fw.glob("vmlinuz-*")) and list(fw.glob("initrd.img-*"))


@pytest.fixture
def chroot_tmp(built: Path) -> Iterator[Path]:
    """A scratch directory inside the root file system, removed again (genimage reads it)."""
    scratch = built / "tmp/edgeq-test"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    yield scratch
    shutil.rmtree(scratch, ignore_errors=True)


def fake_root(built: Path, scratch: Path) -> Path:
    """A copy of the files provisioning reads, so the test does not change the image itself."""
    root = scratch / "root"
    for rel in ("etc/passwd", "etc/group", "etc/hosts", "etc/edgeq/edgeq.toml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built / rel, root / rel)
    return root


def run_firstboot(built: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    inside = "/" + str(scratch.relative_to(built))
    return in_chroot(built, "/usr/bin/python3", "/usr/lib/edgeq-image/edgeq_firstboot.py",
                     "--boot-dir", f"{inside}/boot", "--root-dir", f"{inside}/root",
                     "--edgeq-python", VENV_PYTHON)


def test_firstboot_parses_sample_boot_files_inside_the_image(built: Path,
                                                             chroot_tmp: Path) -> None:
    shutil.copytree(SAMPLES, chroot_tmp / "boot")
    make_tls_pair(chroot_tmp / "boot/tls")
    root = fake_root(built, chroot_tmp)

    done = run_firstboot(built, chroot_tmp)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "etc/hostname").read_text() == "site-gw-07\n"
    assert "allow_anonymous = false" in (root / "etc/edgeq/edgeq.toml").read_text()
    assert "country=DE" in (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert (root / "home/admin/.ssh/authorized_keys").exists()
    assert (root / "etc/edgeq/tls/server.key").exists()
    assert sorted(p.name for p in (chroot_tmp / "boot").iterdir()) == ["edgeq-firstboot.log"]


def test_firstboot_checks_config_with_the_images_edgeq(built: Path, chroot_tmp: Path) -> None:
    (chroot_tmp / "boot").mkdir()
    (chroot_tmp / "boot/edgeq.toml").write_text('[storage]\nsynchronous = "sometimes"\n')
    root = fake_root(built, chroot_tmp)
    default = (root / "etc/edgeq/edgeq.toml").read_text()

    done = run_firstboot(built, chroot_tmp)

    assert done.returncode == 1
    assert "storage.synchronous" in done.stdout
    assert (root / "etc/edgeq/edgeq.toml").read_text() == default


# --- the SD card image -------------------------------------------------------------------

def test_sd_card_layout(built: Path) -> None:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(CARD)], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]
    boot, root = table["partitions"]

    assert table["label"] == "dos"
    assert (boot["type"], boot["start"], boot.get("bootable")) == ("c", 8192, True)
    assert root["type"] == "83"
    labels = [subprocess.run(["blkid", "-p", "-O", str(p["start"] * 512), "-s", "LABEL",
                              "-o", "value", str(CARD)], capture_output=True, text=True,
                             check=False).stdout.strip() for p in (boot, root)]
    assert labels == ["RASPIFIRM", "RASPIROOT"]


def load_boot_test() -> ModuleType:
    path = IMAGE / "scripts/qemu_boot_test.py"
    spec = importlib.util.spec_from_file_location("qemu_boot_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None,
                    reason="qemu-system-aarch64 is missing (make -C image prereqs installs it)")
def test_image_boots_and_the_gateway_answers_mqtt(built: Path, tmp_path: Path) -> None:
    """Then updates the running gateway with apt: N+1, and an N+2 that cannot serve."""
    boot_test = load_boot_test()
    shipped = (built / "etc/edgeq-image-release").read_text().split("EDGEQ_VERSION=")[1].split()[0]
    update = build_deb(OUT / "wheels", tmp_path / "n1", f"{shipped}+update1")
    broken = build_deb(broken_wheels(OUT / "wheels", tmp_path / "broken", BROKEN_SERVE),
                       tmp_path / "n2", f"{shipped}+update2")

    result = boot_test.boot_and_check(CARD, built, tmp_path / "boot", timeout=900,
                                      updates=[update, broken])

    console = (tmp_path / "boot/console.log").read_text(errors="replace")
    assert result.connack == boot_test.CONNACK_NOT_AUTHORIZED, console[-4000:]  # anonymous
    assert result.device_connack == boot_test.CONNACK_ACCEPTED, console[-4000:]
    facts = result.facts
    assert facts["secret_in_journal"] == "0", facts
    assert int(facts["initramfs_fsck"]) >= 1, facts
    assert facts["edgeq"] == "active", console[-4000:]
    assert facts["hostname"] == boot_test.HOSTNAME, facts
    assert facts["firstboot"] == "active", facts
    assert facts["edgeq_user"] == "edgeq", facts
    assert facts["failed"] == "", facts
    assert "Permission denied (publickey)" in result.password_login
    assert "passwordauthentication no" in facts["sshd_password"]
    # grown from the image's root partition to the 1 GiB larger disk
    root_mb = int(facts["root_size"])
    image_root_mb = (CARD.stat().st_size - 260 * 2**20) // 2**20
    assert root_mb > image_root_mb + 512, facts
    # SD card wear: the journal and /tmp in RAM
    assert facts["journal"].split() == ["tmpfs", "0"], facts
    assert facts["tmp"] == "tmpfs", facts
    # the update: switched, restarted, store kept
    first, second = result.updates
    assert first["rc"] == "0", first["output"]
    assert first["release"] == f"releases/{shipped}+update1", first
    assert (first["edgeq"], first["connack"]) == ("active", "20020000"), first
    assert first["retained"] == "kept-across-updates", first
    # the broken one: started, failed, rolled back to N+1, reported by apt
    assert second["rc"] != "0", second
    assert f"rolled back to release {shipped}+update1" in second["output"], second["output"]
    assert "deliberately broken serve" in second["output"], second["output"]
    assert second["release"] == f"releases/{shipped}+update1", second
    assert (second["edgeq"], second["connack"]) == ("active", "20020000"), second
    assert second["retained"] == "kept-across-updates", second


@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None,
                    reason="qemu-system-aarch64 is missing (make -C image prereqs installs it)")
def test_image_boots_on_the_raspberry_pi_3_model(built: Path, tmp_path: Path) -> None:
    """qemu -M raspi3b, with the kernel, initramfs and command line config.txt and cmdline.txt
    name on the card's FAT partition and the Pi 3 B device tree: the card's own boot files."""
    boot_test = load_boot_test()

    result = boot_test.boot_and_check(CARD, built, tmp_path / "pi", timeout=1800,
                                      machine="raspi3b")

    console = (tmp_path / "pi/console.log").read_text(errors="replace")
    assert result.connack == boot_test.CONNACK_NOT_AUTHORIZED, console[-4000:]
    assert result.device_connack == boot_test.CONNACK_ACCEPTED, console[-4000:]
    facts = result.facts
    assert facts["model"].startswith("Raspberry Pi 3 Model B"), facts
    assert facts["root_device"] == "/dev/mmcblk0p2", facts  # the SD card
    assert facts["network"].startswith("eth0 "), facts  # USB Ethernet, named as on the board
    assert facts["edgeq"] == "active", console[-4000:]
    assert facts["firstboot"] == "active", facts
    assert facts["hostname"] == boot_test.HOSTNAME, facts
    assert facts["failed"] == "", facts
