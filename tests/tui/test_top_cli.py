"""`edgeq top` refuses to start on credentials it cannot use, with one line saying what to do,
instead of opening a view that retries forever."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.admin.client import AdminClient
from gateway.admin.endpoint import AdminError
from tests.test_cli_errors import edgeq, one_line_error
from tests.tui.conftest import Gateway

NOBODY = 65534


def test_a_wrong_token_exits_with_one_line(queue_gateway: Gateway) -> None:
    url = queue_gateway.admin().url
    line = one_line_error(edgeq("top", "--url", url, "--token", "not-the-token"))
    assert line.startswith(f"edgeq: the gateway at {url} refused the admin credentials")
    assert "--token" in line


def test_a_stale_token_in_admin_json_exits_with_one_line(queue_gateway: Gateway,
                                                         tmp_path: Path) -> None:
    (tmp_path / "admin.json").write_text(json.dumps({"url": queue_gateway.admin().url,
                                                     "token": "x" * 32}))
    line = one_line_error(edgeq("top", "--data-dir", str(tmp_path)))
    assert "refused the admin credentials" in line
    assert str(tmp_path / "admin.json") in line


def test_the_gateway_writes_its_token_readable_by_its_group(queue_gateway: Gateway) -> None:
    mode = stat.S_IMODE((queue_gateway.process.data_dir / "admin.json").stat().st_mode)
    assert mode == 0o640


@pytest.fixture
def private_admin_json() -> Iterator[Path]:
    """A data dir anyone may enter, holding an admin.json only root may read."""
    data_dir = Path(tempfile.mkdtemp(prefix="edgeq-top-"))
    data_dir.chmod(0o755)
    path = data_dir / "admin.json"
    path.write_text(json.dumps({"url": "http://127.0.0.1:1", "token": "t" * 32}))
    path.chmod(0o640)
    yield path
    shutil.rmtree(data_dir)


def discover_as_nobody(data_dir: Path) -> str:
    """`AdminClient.discover` in a forked child that dropped root for `nobody`: its error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        message = "no error"
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            AdminClient.discover(data_dir=str(data_dir))
        except AdminError as e:
            message = str(e)
        finally:
            os.write(write, message.encode())
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        return f.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_an_unreadable_token_file_says_which_group_or_token(private_admin_json: Path) -> None:
    message = discover_as_nobody(private_admin_json.parent)
    assert message.startswith(f"cannot read {private_admin_json}: permission denied"), message
    assert "readable by group root" in message and "usermod -aG root" in message
    assert message.endswith("or pass --token")


def test_port_is_the_mqtt_port_so_top_takes_admin_port() -> None:
    line = one_line_error(edgeq("top", "--host", "127.0.0.1", "--port", "1883"))
    assert "--admin-port" in line
    assert "usage" in edgeq("top", "--help").stdout and "--admin-port" in edgeq(
        "top", "--help").stdout


def test_top_reaches_the_admin_api_by_host_and_admin_port(queue_gateway: Gateway) -> None:
    port = queue_gateway.admin().url.rsplit(":", 1)[1]
    line = one_line_error(edgeq("top", "--host", "127.0.0.1", "--admin-port", port,
                                "--token", "wrong-token"))
    assert f"the gateway at http://127.0.0.1:{port} refused" in line


def test_queue_create_help_gives_meaning_choices_and_default() -> None:
    text = " ".join(edgeq("queue", "create", "--help").stdout.split())
    assert "--overflow {drop_oldest,reject_new,block}" in text
    assert "Hard limit on stored messages. (default: 1000000)" in text
    assert "--dead-letter-expired {true,false}" in text
    assert "(default: round_robin)" in text
