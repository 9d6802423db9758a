"""Reload tells the truth: refused files are named (file, line, reason) by the admin API with a
4xx and by the log with "refused", and the running users and rules stay in force."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gateway.auth.passwords import add_user
from tests.auth.clients import connack_v311
from tests.bridge.conftest import wait_until
from tests.conftest import GatewayFactory
from tests.support.clients import connected
from tests.support.procs import GatewayProcess

GOOD_ACL = "topic read sensors/#\n"
BROKEN_ACL = "topic read sensors/#\ntopic read alarms/#   # the alarms too\n"


def post_reload(gw: GatewayProcess) -> tuple[int, dict[str, str]]:
    connection = json.loads((gw.data_dir / "admin.json").read_text())
    request = urllib.request.Request(f"{connection['url']}/api/v1/reload", method="POST",
                                     headers={"Authorization": f"Bearer {connection['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def acl_gateway(gateway_factory: GatewayFactory, tmp_path: Path) -> GatewayProcess:
    (tmp_path / "acl").write_text(GOOD_ACL)
    return gateway_factory(f'[auth]\nacl_file = "{tmp_path / "acl"}"\n')


def test_api_reload_of_a_broken_acl_answers_4xx_with_file_line_and_reason(
        acl_gateway: GatewayProcess, tmp_path: Path) -> None:
    (tmp_path / "acl").write_text(BROKEN_ACL)
    status, body = post_reload(acl_gateway)
    assert status == 422
    assert body["error"].startswith(f"{tmp_path / 'acl'}:2: bad topic filter"), body
    assert "reload refused" in acl_gateway.log()
    assert "configuration reloaded" not in acl_gateway.log()
    with connected(acl_gateway.port, "reader") as reader:  # the old rules still apply
        assert reader.subscribe("sensors/#").reason_codes == [0]
        assert reader.subscribe("alarms/#", packet_id=2).reason_codes != [0]


def test_api_reload_of_good_files_answers_200_and_applies_them(
        acl_gateway: GatewayProcess, tmp_path: Path) -> None:
    (tmp_path / "acl").write_text(GOOD_ACL + "topic read alarms/#\n")
    status, body = post_reload(acl_gateway)
    assert (status, body) == (200, {"reloaded": str(acl_gateway.config_path)})
    assert "configuration reloaded" in acl_gateway.log()
    with connected(acl_gateway.port, "reader") as reader:
        assert reader.subscribe("alarms/#").reason_codes == [0]


def test_sighup_with_a_broken_password_file_logs_refused_not_reloaded(
        gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    add_user(passwd, "alice", "s3cret", create=True)
    gw = gateway_factory(f'[auth]\nallow_anonymous = false\npassword_file = "{passwd}"\n')
    passwd.write_text(passwd.read_text() + "bob:plaintext\n")
    assert gw.proc is not None
    os.kill(gw.proc.pid, signal.SIGHUP)
    wait_until(lambda: "reload refused" in gw.log(), 5, "the refusal in the log")
    refusal = next(line for line in gw.log().splitlines() if "reload refused" in line)
    assert f"{passwd}:2: user 'bob' has no argon2 hash" in refusal
    assert "configuration reloaded" not in gw.log() and "Traceback" not in gw.log()
    assert connack_v311(gw.port, "alice", "alice", "s3cret") == 0  # the old users stay
