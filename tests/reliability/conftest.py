"""Fixtures for the reliability suite: gateways in chosen data directories, a small tmpfs,
more file descriptors, and a check that a gateway never logged a traceback.

Every fixture undoes what it did (processes stopped, mounts unmounted) even when the test
fails; sizes and counts come from `EDGEQ_*` environment variables so that `make test` runs a
short version and `make test-slow` the long one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import GatewayProcess

# What asyncio and Python print when a callback or protocol method raises: always a bug here.
CRASH_MARKERS = ("Traceback (most recent call last)", "Exception in callback",
                 "Fatal error: protocol", "Task exception was never retrieved")


EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def env_int(name: str, default: int) -> int:
    """An integer knob from the environment (`EDGEQ_CRASH_CYCLES=200`)."""
    return int(os.environ.get(name, default))


def assert_no_crash_in_log(gw: GatewayProcess) -> None:
    text = gw.log()
    for marker in CRASH_MARKERS:
        assert marker not in text, f"the gateway logged {marker!r}:\n{text[-6000:]}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_nofile(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE (children inherit it); the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # root may raise the hard limit too (CAP_SYS_RESOURCE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            target = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


@pytest.fixture
def nofile() -> Iterator[Callable[[int], int]]:
    """`nofile(25_000)` raises the descriptor limit for this test and its children."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield raise_nofile
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


class Tmpfs:
    """A size-limited tmpfs mounted on `path` (a disk that fills up, or turns read-only)."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size
        self.mounted = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        result = _run("mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs",
                      str(self.path))
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); "
                        "run as root on Linux")
        self.mounted = True

    def remount(self, mode: str) -> None:
        """`ro` or `rw`, in place, without unmounting (open files stay open)."""
        result = _run("mount", "-o", f"remount,{mode}", str(self.path))
        assert result.returncode == 0, f"remount {mode}: {result.stderr}"

    def umount(self) -> None:
        if not self.mounted:
            return
        if _run("umount", str(self.path)).returncode != 0:
            _run("umount", "-l", str(self.path))  # a straggler holds a file: detach lazily
        self.mounted = False


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Tmpfs]]:
    """`tmpfs("2m")` mounts a fresh tmpfs under tmp_path; unmounted after the test."""
    mounts: list[Tmpfs] = []

    def make(size: str) -> Tmpfs:
        fs = Tmpfs(tmp_path / f"tmpfs{len(mounts)}", size)
        mounts.append(fs)
        fs.mount()
        return fs

    yield make
    for fs in reversed(mounts):
        fs.umount()


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Path]:
    """A small ext4 file system on a loop device, mounted `errors=remount-ro`, so that a
    file-system error turns it read-only under the running gateway (as a failing SD card
    does), or `power_cut` stops it as a power failure would; the image is `sd.img` beside the
    mount point."""
    image, mount = tmp_path / "sd.img", tmp_path / "sd"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True,
                          check=False)
    mounted = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mount)],
                             capture_output=True, text=True, check=False)
    if made.returncode or mounted.returncode:
        pytest.skip(f"cannot mount an ext4 loop device here: {made.stderr}{mounted.stderr}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def power_cut(mount: Path) -> None:
    """Stop the file system at once, as a power failure would: what was not written to the
    device (page cache, unflushed journal) is lost (EXT4_IOC_SHUTDOWN with NOLOGFLUSH, the
    crash simulation of xfstests). Unmount and mount again to see what survived."""
    fd = os.open(mount, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def remount(mount: Path) -> None:
    """Unmount (after a power cut or an error) and mount the same image again (journal replay).

    The loop device is released asynchronously after the unmount; `mount -o loop` would reuse
    one still attached to the image, and with it the old, stopped file system. So wait for the
    release first."""
    subprocess.run(["umount", str(mount)], check=True, timeout=30)
    image = mount.parent / "sd.img"
    deadline = time.monotonic() + 20
    while _run("losetup", "-j", str(image)).stdout.strip():
        assert time.monotonic() < deadline, f"{image} stays attached to a loop device"
        time.sleep(0.1)
    subprocess.run(["e2fsck", "-p", "-f", str(image)], capture_output=True, check=False)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, timeout=30)
    probe = mount / ".probe"
    probe.write_bytes(b"up")  # the new mount takes writes (OSError otherwise)
    probe.unlink()


@pytest.fixture
def gateways() -> Iterator[Callable[..., GatewayProcess]]:
    """`gateways(data_dir, config_text, start=True)`: a gateway in a chosen data directory
    (on a tmpfs, say), stopped after the test — killed if SIGTERM does not end it."""
    made: list[GatewayProcess] = []

    def make(data_dir: Path, config_text: str = "", start: bool = True) -> GatewayProcess:
        gw = GatewayProcess(data_dir=data_dir, config_text=config_text)
        made.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in made:
        gw.stop(timeout=5)
