"""The `edgeq` command line as a user meets it: --version, --help, config errors in one line
naming the file and the key (no traceback), and a second `--listen`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import __version__
from tests.conftest import GatewayFactory
from tests.support.clients import connected
from tests.support.procs import REPO, GatewayProcess, free_port, wait_for_port

EDGEQ = Path(sys.executable).with_name("edgeq")

# The CLI side of config errors; the rules themselves are tested in tests/test_config.py.
CONFIG_ERRORS = {
    "out-of-range": ("[mqtt]\nmax_qos = 3\n", "mqtt.max_qos"),
    "unknown-key": ("[mqtt]\nmax_qoss = 1\n", "mqtt.max_qoss"),
    "bad-listener-address": ('[[listeners]]\naddress = "nope"\n', "listeners[0].address"),
    "not-toml": ("[mqtt\nmax_qos = 1\n", "not valid TOML"),
}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every invocation that needs no running gateway, started at once (each costs a Python
    start-up) and collected by name."""
    base = tmp_path_factory.mktemp("cli")
    commands: dict[str, list[str]] = {
        "version": ["--version"], "help": ["--help"], "serve-help": ["serve", "--help"],
        "missing-config": ["serve", "--config", str(base / "absent.toml")],
        "bad-listen": ["serve", "--listen", "bogus://127.0.0.1:1", "--data-dir",
                       str(base / "var-listen")],
    }
    for name, (text, _) in CONFIG_ERRORS.items():
        path = base / name / "edgeq.toml"
        path.parent.mkdir()
        path.write_text(text)
        commands[name] = ["serve", "--config", str(path), "--data-dir", str(base / name / "var")]
    procs = {name: subprocess.Popen([str(EDGEQ), *args], cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=os.environ.copy())
             for name, args in commands.items()}
    out: dict[str, Run] = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=30)
        out[name] = Run(proc.returncode, stdout, stderr)
    return out


def test_version(runs: dict[str, Run]) -> None:
    assert runs["version"].returncode == 0
    assert runs["version"].stdout.strip() == f"edgeq {__version__}"


def test_help_lists_the_commands_and_serve_flags(runs: dict[str, Run]) -> None:
    top, serve = runs["help"], runs["serve-help"]
    assert top.returncode == 0 and serve.returncode == 0
    assert "serve" in top.stdout and "queue" in top.stdout
    for flag in ("--config", "--listen", "--data-dir", "--admin"):
        assert flag in serve.stdout


@pytest.mark.parametrize(("name", "key"), [(n, k) for n, (_, k) in CONFIG_ERRORS.items()],
                         ids=list(CONFIG_ERRORS))
def test_config_error_is_one_line_naming_file_and_key(runs: dict[str, Run], name: str,
                                                      key: str) -> None:
    run = runs[name]
    assert run.returncode != 0
    assert len(run.lines) == 1, run.stderr
    assert f"/{name}/edgeq.toml" in run.lines[0] and key in run.lines[0], run.lines[0]
    assert "Traceback" not in run.stderr + run.stdout


def test_missing_config_file(runs: dict[str, Run]) -> None:
    run = runs["missing-config"]
    assert run.returncode != 0 and len(run.lines) == 1
    assert "absent.toml" in run.lines[0] and "Traceback" not in run.stderr


def test_bad_listen_flag(runs: dict[str, Run]) -> None:
    run = runs["bad-listen"]
    assert run.returncode != 0 and len(run.lines) == 1
    assert "--listen bogus://127.0.0.1:1" in run.lines[0]


def test_port_in_use_fails_cleanly(broker: GatewayProcess, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(EDGEQ), "serve", "--listen", f"127.0.0.1:{broker.port}", "--admin", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "var")],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"127.0.0.1:{broker.port}" in result.stderr.strip().splitlines()[-1]


def test_listen_repeated_serves_every_address(gateway_factory: GatewayFactory) -> None:
    second = free_port()
    gw = gateway_factory(extra_args=["--listen", f"127.0.0.1:{second}"])
    wait_for_port(second)
    with connected(gw.port, "on-first") as a, connected(second, "on-second") as b:
        a.subscribe("both")
        b.publish("both", b"across listeners")
        assert a.receive().payload == b"across listeners"
