"""Bad invocations of the real `edgeq` entry point: one readable line on stderr, a non-zero exit
status, never a traceback; and a data directory that only one `edgeq serve` may use at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory
from tests.support.procs import free_port

EDGEQ = Path(sys.executable).with_name("edgeq")


def edgeq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEQ), *args], capture_output=True, text=True, timeout=30,
                          check=False)


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed run (asserting there is exactly one, no traceback)."""
    assert run.returncode not in (0, None), run
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    return lines[0]


def serve(data_dir: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
    return edgeq("serve", "--listen", f"127.0.0.1:{free_port()}", "--admin", "127.0.0.1:0",
                 "--data-dir", str(data_dir), *extra)


def test_admin_port_without_host(tmp_path: Path) -> None:
    line = one_line_error(edgeq("serve", "--admin", "28093", "--data-dir", str(tmp_path / "v")))
    assert line == ("edgeq: --admin 28093: '28093' is not HOST:PORT; "
                    "e.g. --admin 127.0.0.1:28093")


def test_admin_listen_without_host_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "edgeq.toml"
    path.write_text('[admin]\nlisten = "18083"\n')
    line = one_line_error(serve(tmp_path / "v", "--config", str(path)))
    assert line.startswith(f"edgeq: {path}: admin.listen: '18083' is not HOST:PORT"), line


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    line = one_line_error(serve(tmp_path / "file"))
    assert line == f"edgeq: --data-dir {tmp_path / 'file'}: is a file, not a directory"


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    line = one_line_error(serve(tmp_path / "file" / "var"))
    assert line.startswith(f"edgeq: --data-dir {tmp_path / 'file' / 'var'}: cannot create it:")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may create files in (root too: the immutable attribute)."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555)
    yield path
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o755)


def test_data_dir_that_is_not_writable(read_only_dir: Path) -> None:
    line = one_line_error(serve(read_only_dir))
    assert line.startswith(f"edgeq: --data-dir {read_only_dir}: not writable:"), line


def test_a_second_serve_on_the_same_data_dir_is_refused(gateway_factory: GatewayFactory) -> None:
    first = gateway_factory()
    assert first.proc is not None
    before = (first.data_dir / "admin.json").read_text()
    line = one_line_error(serve(first.data_dir))
    assert line == (f"edgeq: --data-dir {first.data_dir}: in use by another edgeq serve "
                    f"(pid {first.proc.pid}); stop it first or use another data directory")
    assert (first.data_dir / "admin.json").read_text() == before
    assert first.proc.poll() is None


def test_the_data_dir_is_free_again_after_a_stop(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()
    gw.restart()
    assert json.loads((gw.data_dir / "admin.json").read_text())["token"]


def test_queue_list_with_a_url_that_is_not_one() -> None:
    line = one_line_error(edgeq("queue", "list", "--url", "notaurl", "--token", "t"))
    assert line == ("edgeq: --url notaurl: not an admin API URL; "
                    "use http://HOST:PORT, e.g. http://127.0.0.1:18083")


@pytest.mark.parametrize("args", [["light+1", "power", "on"],
                                  ["light-1", "power", "on", "--topic", "lights/#"]],
                         ids=["device-id", "topic"])
def test_device_send_to_a_wildcard_topic(gateway_factory: GatewayFactory,
                                         args: list[str]) -> None:
    gw = gateway_factory()
    line = one_line_error(edgeq("device", "send", *args, "--port", str(gw.port)))
    assert line.startswith("edgeq device: error: ") and ("wildcard" in line
                                                         or "not a device id" in line), line


@pytest.mark.parametrize(("package", "args", "extra"), [
    ("textual", ["top", "--url", "http://127.0.0.1:1", "--token", "t"], "tui"),
    ("paho", ["demo", "--duration", "1"], "device"),
])
def test_a_missing_extra_is_named_in_one_line(tmp_path: Path, package: str, args: list[str],
                                              extra: str) -> None:
    # The package is absent the way an uninstalled one is: its import finds nothing.
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{package!r}] = None\n")
    run = subprocess.run([str(EDGEQ), *args], capture_output=True, text=True, timeout=30,
                         check=False, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    line = one_line_error(run)
    assert f"pip install 'edgeq[{extra}]'" in line and package in line
