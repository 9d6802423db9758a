"""Every config and ACL example in docs/ and README.md works as written.

Each ```toml block that is a gateway config and each ```acl block goes through the real
`edgeq check-config` (the loaders `edgeq serve` uses), with the files it names (`/etc/edgeq/...`)
provided by the test. The ```toml block under a `wifi.toml` heading goes through the first-boot
parser the image uses.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.auth.passwords import add_user
from tests.image.conftest import load_firstboot
from tests.support.certs import make_tls_files

REPO = Path(__file__).resolve().parents[1]
EDGEQ = Path(sys.executable).with_name("edgeq")
DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def snippets(kind: str) -> list[tuple[str, str, str]]:
    """(where, nearest heading, text) of every ```KIND block, where = `docs/x.md:LINE`."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in FENCE.finditer(text):
            if block[1] == kind:
                before = text[:block.start()]
                headings = HEADING.findall(before)
                where = f"{path.relative_to(REPO)}:{before.count(chr(10)) + 1}"
                found.append((where, headings[-1] if headings else "", block[2]))
    return found


def test_the_docs_have_the_examples_this_test_is_for() -> None:
    assert len(snippets("acl")) >= 1
    assert len([s for s in snippets("toml") if s[1] != "wifi.toml"]) >= 8


@pytest.fixture(scope="module")
def etc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for /etc/edgeq with the files the examples name."""
    etc = tmp_path_factory.mktemp("docs") / "etc" / "edgeq"
    make_tls_files(etc / "tls")  # server.crt, server.key, ca.crt
    add_user(etc / "passwd", "dashboard", "s3cret", create=True)
    (etc / "acl").write_text("topic read public/#\n")
    return etc


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEQ), "check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(("where", "text"), [(w, t) for w, h, t in snippets("toml")
                                             if h != "wifi.toml"],
                         ids=[w for w, h, _ in snippets("toml") if h != "wifi.toml"])
def test_every_gateway_config_example_passes_check_config(etc: Path, tmp_path: Path,
                                                          where: str, text: str) -> None:
    config = tmp_path / "edgeq.toml"
    config.write_text(text.replace("/etc/edgeq/", f"{etc}/"))
    run = check_config(config)
    assert run.returncode == 0, f"{where}: {run.stderr}"


@pytest.mark.parametrize(("where", "text"), [(w, t) for w, _, t in snippets("acl")],
                         ids=[w for w, _, _ in snippets("acl")])
def test_every_acl_example_passes_check_config(tmp_path: Path, where: str, text: str) -> None:
    (tmp_path / "acl").write_text(text)
    config = tmp_path / "edgeq.toml"
    config.write_text(f'[auth]\nacl_file = "{tmp_path / "acl"}"\n')
    run = check_config(config)
    assert run.returncode == 0, f"{where}: {run.stderr}"


def test_the_wifi_example_is_read_by_first_boot() -> None:
    (where, _, text), = [s for s in snippets("toml") if s[1] == "wifi.toml"]
    firstboot = load_firstboot()
    written = firstboot.wpa_config(tomllib.loads(text), Path(where))
    assert f"ssid={b'site-wifi'.hex()}" in written and "country=DE" in written
