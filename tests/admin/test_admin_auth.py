"""Who may use the admin API: the token, or a password-file user listed in `admin.users`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.admin.client import AdminClient
from gateway.admin.endpoint import AdminError
from tests.conftest import GatewayFactory


def test_token_survives_a_restart_so_a_running_top_reconnects(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()
    before = json.loads((gw.data_dir / "admin.json").read_text())["token"]
    client = AdminClient.discover(data_dir=str(gw.data_dir))
    gw.restart()
    after = json.loads((gw.data_dir / "admin.json").read_text())
    assert after["token"] == before
    client.url = after["url"]  # the admin port is ephemeral in tests
    assert isinstance(client.queues(), list)


def test_admin_users_log_in_with_their_password(gateway_factory: GatewayFactory,
                                                tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    for user, password in (("alice", "s3cret"), ("bob", "hunter2")):
        subprocess.run([sys.executable, "-m", "gateway", "passwd", "-b",
                        *(["-c"] if user == "alice" else []), str(passwd), user, password],
                       check=True)
    gw = gateway_factory(f'[auth]\npassword_file = "{passwd}"\n[admin]\nusers = ["alice"]\n')
    url = json.loads((gw.data_dir / "admin.json").read_text())["url"]
    assert isinstance(AdminClient.discover(url, user="alice", password="s3cret").queues(), list)
    for user, password in (("alice", "wrong"), ("bob", "hunter2")):
        with pytest.raises(AdminError, match="missing or wrong admin credentials"):
            AdminClient.discover(url, user=user, password=password).queues()
