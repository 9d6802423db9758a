"""Authentication and ACLs against a running edgeq, with real clients over real sockets."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.auth.passwords import add_user
from tests.auth.clients import Client, connack_v311
from tests.conftest import GatewayFactory
from tests.support.procs import GatewayProcess

ACL = """\
user alice
topic readwrite sensors/#
topic read $SYS/#
queue consume orders
topic read orders/#

user bob
topic write sensors/+/temp

pattern write devices/%c/state
"""


@pytest.fixture
def gateway(tmp_path: Path, gateway_factory: GatewayFactory) -> GatewayProcess:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    add_user(passwd, "alice", "alice-pw", create=True)
    add_user(passwd, "bob", "bob-pw")
    acl.write_text(ACL)
    return gateway_factory(config_text=f"""
[auth]
allow_anonymous = false
password_file = "{passwd}"
acl_file = "{acl}"

[admin]
enabled = false

[[queues]]
name = "orders"
filter = "orders/#"
""")


@pytest.fixture
def connect(gateway: GatewayProcess) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(client_id: str, username: str | None = None, password: str | None = None,
             version: int = 5) -> Client:
        client = Client(gateway.port, client_id, username=username, password=password,
                        version=version)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_connect_refusals_mqtt5(connect: Callable[..., Client]) -> None:
    assert connect("c1", "alice", "alice-pw").connect() == 0x00
    assert connect("c2", "alice", "wrong").connect() == 0x86  # bad user name or password
    assert connect("c3", "mallory", "alice-pw").connect() == 0x86
    assert connect("c4").connect() == 0x87  # not authorized: anonymous access is off


def test_connect_refusals_mqtt311(gateway: GatewayProcess) -> None:
    assert connack_v311(gateway.port, "c1", "alice", "alice-pw") == 0x00
    assert connack_v311(gateway.port, "c2", "alice", "wrong") == 0x04
    assert connack_v311(gateway.port, "c3") == 0x05


def test_acl_on_subscribe_publish_and_consume(connect: Callable[..., Client]) -> None:
    alice = connect("alice-1", "alice", "alice-pw")
    assert alice.connect() == 0
    assert alice.subscribe("sensors/+/temp") == 1
    assert alice.subscribe("$SYS/broker/uptime", qos=0) == 0
    assert alice.subscribe("#") == 0x87
    assert alice.publish("sensors/kitchen/temp") < 0x80
    assert alice.publish("devices/other/state") == 0x87
    assert alice.publish("devices/alice-1/state") < 0x80  # the %c pattern
    assert alice.subscribe("$queue/orders") == 1

    bob = connect("bob-1", "bob", "bob-pw")
    assert bob.connect() == 0
    assert bob.publish("sensors/hall/temp") < 0x80
    assert bob.publish("sensors/hall/humidity") == 0x87
    assert bob.subscribe("sensors/hall/temp") == 0x87  # write-only
    assert bob.subscribe("$queue/orders") == 0x87
    assert bob.subscribe("$q/orders/#") == 0x87


def test_suback_failure_in_mqtt311(connect: Callable[..., Client]) -> None:
    bob = connect("bob-2", "bob", "bob-pw", version=4)
    assert bob.connect() == 0
    assert bob.subscribe("sensors/#") == 0x80


def test_sighup_applies_a_changed_acl_to_connected_clients(
        tmp_path: Path, gateway: GatewayProcess, connect: Callable[..., Client]) -> None:
    bob = connect("bob-3", "bob", "bob-pw")
    assert bob.connect() == 0
    assert bob.subscribe("sensors/#") == 0x87
    (tmp_path / "acl").write_text(ACL + "\nuser bob\ntopic read sensors/#\n")
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while (code := bob.subscribe("sensors/#")) == 0x87 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 1
    assert not bob.disconnected.is_set()
