"""Updating a gateway without reflashing (`make test-slow`): the edgeq Debian package,
installed with dpkg in a copy of the image's arm64 root file system (under qemu-user-static).

The image ships release N (the package `make -C image deb` builds, installed at build time).
The test installs N+1 (the same wheels under a higher version), then a deliberately broken N+2
(its edgeq exits at import), and checks that the store and the configuration are never touched,
that N+2 is refused and N+1 keeps running, and that `edgeq-update rollback` goes back to N.

What it cannot show in a chroot is the restart: systemd does not run there, so the check that
edgeq starts and stays up after the switch (deb/edgeq-update, `restart_and_check`) is not
exercised here. Needs root and the built image stages (image/out, or $EDGEQ_IMAGE_OUT).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.image.conftest import BROKEN_AT_IMPORT, IMAGE, broken_wheels, build_deb

OUT = Path(os.environ.get("EDGEQ_IMAGE_OUT", IMAGE / "out"))
REPO = IMAGE.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot into the image needs root"),
]


def in_chroot(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    script = f'. {IMAGE}/scripts/lib.sh; in_chroot "$@"'
    return subprocess.run(["bash", "-c", script, "in_chroot", str(root), *command],
                          capture_output=True, text=True, timeout=1200, check=False)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its SHA-256, mode and owner."""
    digest = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            data = hashlib.sha256(path.read_bytes()).hexdigest()
            digest[str(path.relative_to(root))] = f"{data} {st.st_mode:o} {st.st_uid}:{st.st_gid}"
    return digest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_store(data: Path, config: Path) -> None:
    """A real store, made by this repository's edgeq: a queue holding three messages."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--listen",
                             f"127.0.0.1:{port}", "--data-dir", str(data), "--config",
                             str(config), "--admin", f"127.0.0.1:{free_port()}"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="update-test",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set("device", "update-test-password")
        for _ in range(100):
            try:
                client.connect("127.0.0.1", port)
                break
            except OSError:
                time.sleep(0.2)
        client.loop_start()
        infos = [client.publish("lights/l1/commands", f"on {i}", qos=1) for i in range(3)]
        for info in infos:
            info.wait_for_publish(30)
        client.disconnect()
        client.loop_stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def install(root: Path, deb: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy2(deb, root / "tmp" / deb.name)
    return in_chroot(root, "dpkg", "--install", f"/tmp/{deb.name}")


def release(root: Path) -> str:
    return os.readlink(root / "opt/edgeq/venv")


def package_state(root: Path) -> str:
    return in_chroot(root, "dpkg-query", "-W", "-f", "${Version} ${db:Status-Abbrev}",
                     "edgeq").stdout.strip()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the image's root with a password file and a store, as after some service."""
    built = subprocess.run(["make", "-C", str(IMAGE), f"OUT={OUT}", "rootfs"],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    root = tmp_path_factory.mktemp("gateway") / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(OUT / "rootfs"), str(root)], check=True)
    etc = root / "etc/edgeq"
    subprocess.run([sys.executable, "-m", "gateway", "passwd", "-c", "-b", str(etc / "passwd"),
                    "device", "update-test-password"], cwd=REPO, check=True)
    host_config = tmp_path_factory.mktemp("config") / "edgeq.toml"
    host_config.write_text((etc / "edgeq.toml").read_text()
                           .replace('"/etc/edgeq/passwd"', f'"{etc / "passwd"}"')
                           .replace("0.0.0.0:1883", "127.0.0.1:0"))
    make_store(root / "var/lib/edgeq", host_config)
    # owners and modes as every boot sets them (edgeq.tmpfiles: root:edgeq 0640)
    done = in_chroot(root, "systemd-tmpfiles", "--create", "edgeq.conf")
    assert done.returncode == 0, done.stderr
    return root


def test_update_keeps_data_refuses_a_broken_release_and_rolls_back(
        gateway: Path, tmp_path: Path) -> None:
    root = gateway
    first = package_state(root).split()[0]
    assert release(root) == f"releases/{first}"
    kept = {"etc/edgeq": tree_digest(root / "etc/edgeq"),
            "var/lib/edgeq": tree_digest(root / "var/lib/edgeq")}
    assert any(name.endswith(".db") or "sqlite" in name for name in kept["var/lib/edgeq"]), kept

    # N+1: installed, switched to, N kept for a rollback
    wheels = OUT / "wheels"
    update = build_deb(wheels, tmp_path / "n1", f"{first}+update1")
    done = install(root, update)
    assert done.returncode == 0, done.stdout + done.stderr
    assert release(root) == f"releases/{first}+update1"
    assert (root / "opt/edgeq/previous-release").read_text().strip() == first
    assert sorted(p.name for p in (root / "opt/edgeq/releases").iterdir()) == \
        sorted([first, f"{first}+update1"])
    assert in_chroot(root, "edgeq", "--help").returncode == 0
    assert package_state(root) == f"{first}+update1 ii"

    # N+2, broken: refused before the switch, N+1 still the release
    broken = build_deb(broken_wheels(wheels, tmp_path / "broken-wheels", BROKEN_AT_IMPORT),
                       tmp_path / "n2", f"{first}+update2")
    done = install(root, broken)
    assert done.returncode != 0
    assert "deliberately broken release" in done.stderr
    assert f"failed its check; still running {first}+update1" in done.stderr
    assert release(root) == f"releases/{first}+update1"
    assert not (root / f"opt/edgeq/releases/{first}+update2").exists()
    assert in_chroot(root, "edgeq", "--help").returncode == 0

    # dpkg knows the update failed; installing N+1 again puts the package back in order
    assert package_state(root).startswith(f"{first}+update2 i")
    assert not package_state(root).endswith("ii")
    done = install(root, update)
    assert done.returncode == 0, done.stdout + done.stderr
    assert package_state(root) == f"{first}+update1 ii"

    # by hand: back to the release the image shipped
    done = in_chroot(root, "/usr/lib/edgeq/edgeq-update", "rollback")
    assert done.returncode == 0, done.stderr
    assert release(root) == f"releases/{first}"
    assert in_chroot(root, "edgeq", "check-config", "--config",
                     "/etc/edgeq/edgeq.toml").returncode == 0

    assert {"etc/edgeq": tree_digest(root / "etc/edgeq"),
            "var/lib/edgeq": tree_digest(root / "var/lib/edgeq")} == kept
