"""Fixtures of the image tests: the first-boot module loaded from image/firstboot/, and a fake
root file system shaped like the image's (users admin and edgeq, the default edgeq.toml)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "image"
FIRSTBOOT = IMAGE / "firstboot" / "edgeq_firstboot.py"
DEFAULT_CONFIG = IMAGE / "overlay" / "etc" / "edgeq" / "edgeq.toml"
SAMPLES = Path(__file__).resolve().parent / "samples"
# Put into gateway/cli.py (after its __future__ import) to make a deliberately broken release of
# edgeq: one that
# fails at import (caught by the package's check before the switch), one that passes the check
# but cannot serve (caught after the restart, and rolled back).
BROKEN_AT_IMPORT = 'raise SystemExit("deliberately broken release")\n'
BROKEN_SERVE = ('import sys\nif "serve" in sys.argv:\n'
                '    raise SystemExit("deliberately broken serve")\n')


def broken_wheels(wheels: Path, dest: Path, code: str) -> Path:
    """A copy of a release's wheels whose edgeq runs `code` first in gateway/cli.py."""
    dest.mkdir()
    for wheel in wheels.glob("*.whl"):
        if not wheel.name.startswith("edgeq-"):
            shutil.copy2(wheel, dest / wheel.name)
            continue
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(dest / wheel.name, "w") as out:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == "gateway/cli.py":
                    future = b"from __future__ import annotations\n"
                    assert future in data, "gateway/cli.py no longer starts as expected"
                    data = data.replace(future, future + code.encode(), 1)
                out.writestr(item, data)
    return dest


def build_deb(wheels: Path, out: Path, version: str) -> Path:
    """The edgeq package of `wheels` (image/scripts/build-deb.sh) at `version`."""
    subprocess.run([str(IMAGE / "scripts/build-deb.sh"), str(wheels),
                    str(IMAGE.parent / "systemd"), str(out), version],
                   check=True, capture_output=True, text=True)
    return out / f"edgeq_{version}_arm64.deb"


def load_firstboot() -> ModuleType:
    """image/firstboot/edgeq_firstboot.py as a module (image/ is not a Python package)."""
    if str(FIRSTBOOT.parent) not in sys.path:  # its sibling modules, as the image runs it
        sys.path.insert(0, str(FIRSTBOOT.parent))
    spec = importlib.util.spec_from_file_location("edgeq_firstboot", FIRSTBOOT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def firstboot() -> ModuleType:
    return load_firstboot()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An image-like root: /etc/passwd and /etc/group with admin and edgeq, the default config."""
    r = tmp_path / "root"
    (r / "etc" / "edgeq").mkdir(parents=True)
    (r / "home" / "admin").mkdir(parents=True)
    (r / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "edgeq:x:998:998:edgeq MQTT broker:/var/lib/edgeq:/usr/sbin/nologin\n"
        "admin:x:1000:1000::/home/admin:/bin/bash\n")
    (r / "etc" / "group").write_text("root:x:0:\ngpio:x:997:edgeq\nedgeq:x:998:\nadmin:x:1000:\n")
    (r / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tedgeq\n")
    shutil.copy(DEFAULT_CONFIG, r / "etc" / "edgeq" / "edgeq.toml")
    return r


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    """An empty boot partition."""
    b = tmp_path / "boot"
    b.mkdir()
    return b


@pytest.fixture
def sample_boot(tmp_path: Path) -> Path:
    """A boot partition with every provisioning file, from tests/image/samples/."""
    b = tmp_path / "sample-boot"
    shutil.copytree(SAMPLES, b)
    make_tls_pair(b / "tls")
    return b


def make_tls_pair(directory: Path) -> None:
    """A throwaway self-signed server certificate and key (none is kept in the repository)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=edgeq.local",
                    "-keyout", str(directory / "server.key"),
                    "-out", str(directory / "server.crt")], check=True, capture_output=True)
