"""Authorization on every path a message travels, attacked as hostile tenants would (issue 14).

Each test is one attack from the review, run through raw MQTT clients against a real gateway:
queue consumption of another tenant's topics, queue creation, session theft, `deny` rules at
delivery, `$SYS` spoofing and topics deep enough to break recursive matching.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.auth.passwords import add_user
from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck
from tests.conftest import GatewayFactory
from tests.support.clients import RawClient
from tests.support.procs import GatewayProcess

USERS = ("alice", "eve", "bob", "maker", "sensor")
ACL = """\
user alice
topic readwrite alice/#
topic read $SYS/#
topic readwrite orders/#
queue consume orders

user eve
topic readwrite eve/#
queue consume #

user bob
topic read sensors/#
topic deny sensors/secret/#
topic read $SYS/#
topic write bob/#

user maker
topic readwrite maker/#
queue consume maker/#
queue create maker/#

user sensor
topic write sensors/#
"""
QUEUES = """
[[queues]]
name = "orders"
filter = "orders/#"

[[queues]]
name = "alerts"
filter = "alice/alerts/#"
"""


@pytest.fixture
def gateway(tmp_path: Path, gateway_factory: GatewayFactory) -> GatewayProcess:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    for i, user in enumerate(USERS):
        add_user(passwd, user, f"{user}-pw", create=i == 0)
    acl.write_text(ACL)
    return gateway_factory(config_text=f"""
[auth]
allow_anonymous = false
password_file = "{passwd}"
acl_file = "{acl}"
{QUEUES}""")


class Clients:
    def __init__(self, port: int) -> None:
        self.port = port
        self.open: list[RawClient] = []

    def raw(self, version: int = MQTT_5) -> RawClient:
        client = RawClient(self.port, version)
        self.open.append(client)
        return client

    def login(self, user: str, client_id: str, version: int = MQTT_5,
              **connect: object) -> RawClient:
        client = self.raw(version)
        connack = client.connect(client_id, username=user, password=f"{user}-pw".encode(),
                                 **connect)  # type: ignore[arg-type]
        assert connack.reason_code == 0, f"CONNACK 0x{connack.reason_code:02X}"
        return client


@pytest.fixture
def clients(gateway: GatewayProcess) -> Iterator[Clients]:
    c = Clients(gateway.port)
    yield c
    for client in c.open:
        client.close()


def puback(packet: object) -> int:
    assert isinstance(packet, PubAck), packet
    return packet.reason_code


# -- 1. queues: the filter must be readable, creating a queue is its own permission ------------

def test_queue_consumer_cannot_read_another_tenants_topics(clients: Clients) -> None:
    eve = clients.login("eve", "eve-1")
    codes = eve.subscribe("$queue/x/alice/#", "$queue/alerts", "$q/alice/alerts/#",
                          "$queue/orders", qos=1).reason_codes
    assert codes == [0x87, 0x87, 0x87, 0x87]
    alice = clients.login("alice", "alice-1")
    assert puback(alice.publish("alice/alerts/door", b"open", qos=1)) == 0
    assert puback(alice.publish("alice/private", b"diary", qos=1)) == 0x10
    eve.expect_silence(0.5)


def test_consumer_with_read_access_consumes_a_declared_queue(clients: Clients) -> None:
    alice = clients.login("alice", "alice-1")
    assert alice.subscribe("$queue/orders", qos=1).reason_codes == [1]
    producer = clients.login("alice", "alice-2")
    assert puback(producer.publish("orders/1", b"order", qos=1)) == 0
    assert alice.receive().payload == b"order"


def test_queues_are_not_created_by_subscribing_without_a_grant(clients: Clients) -> None:
    eve = clients.login("eve", "eve-1")
    assert eve.subscribe("$queue/trap/eve/#", qos=1).reason_codes == [0x87]
    maker = clients.login("maker", "maker-1")
    assert maker.subscribe("$queue/mine/maker/jobs/#", "$queue/wide/#", qos=1
                           ).reason_codes == [1, 0x87]
    producer = clients.login("maker", "maker-2")
    assert puback(producer.publish("maker/jobs/1", b"job", qos=1)) == 0
    assert maker.receive().payload == b"job"


def test_anonymous_clients_cannot_create_a_queue_that_blocks_every_producer(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()  # the embedded default: anonymous, no ACL file
    with RawClient(gw.port) as trap, RawClient(gw.port) as producer:
        trap.connect("trap")
        assert trap.subscribe("$queue/all/#", qos=1).reason_codes == [0x87]
        producer.connect("producer")
        for i in range(5):
            assert puback(producer.publish("site/temp", b"%d" % i, qos=1, packet_id=i + 1)) \
                in (0, 0x10)


# -- 2. a session belongs to the user who created it --------------------------------------------

@pytest.mark.parametrize("version", [MQTT_5, MQTT_311])
def test_another_user_cannot_resume_a_persistent_session(
        clients: Clients, gateway: GatewayProcess, version: int) -> None:
    props = {"session_expiry_interval": 600} if version == MQTT_5 else {}
    alice = clients.login("alice", "shared-id", version, clean_start=False, properties=props)
    alice.subscribe("alice/#", qos=1)
    alice.disconnect()
    producer = clients.login("alice", "alice-2")
    producer.publish("alice/inbox", b"for alice only", qos=1)
    thief = clients.raw(version)
    connack = thief.connect("shared-id", clean_start=False, username="eve",
                            password=b"eve-pw", properties=props)
    assert connack.reason_code == (0x87 if version == MQTT_5 else 0x05)
    assert not connack.session_present
    again = clients.login("alice", "shared-id", version, clean_start=False, properties=props)
    assert again.receive().payload == b"for alice only"
    assert "eve" in gateway.log() and "shared-id" in gateway.log()


def test_another_user_cannot_take_over_a_live_session(clients: Clients) -> None:
    alice = clients.login("alice", "alice-live")
    alice.subscribe("alice/#", qos=1)
    thief = clients.raw()
    assert thief.connect("alice-live", username="eve", password=b"eve-pw").reason_code == 0x87
    producer = clients.login("alice", "alice-2")
    producer.publish("alice/x", b"still mine", qos=1)
    assert alice.receive().payload == b"still mine"


def test_session_owner_survives_a_restart(clients: Clients, gateway: GatewayProcess) -> None:
    alice = clients.login("alice", "owned", clean_start=False,
                          properties={"session_expiry_interval": 600})
    alice.subscribe("alice/#", qos=1)
    alice.disconnect()
    gateway.restart()
    thief = clients.raw()
    assert thief.connect("owned", clean_start=False, username="eve", password=b"eve-pw",
                         properties={"session_expiry_interval": 600}).reason_code == 0x87


# -- 3. deny rules hold at delivery: live, retained, offline ------------------------------------

def test_deny_under_a_granted_wildcard_holds_for_live_and_retained(clients: Clients) -> None:
    bob = clients.login("bob", "bob-1")
    assert bob.subscribe("sensors/#", qos=1).reason_codes == [1]
    publisher = _sensor_publisher(clients)
    publisher.publish("sensors/secret/key", b"s3cret", qos=1, retain=True)
    publisher.publish("sensors/public/temp", b"21", qos=1, packet_id=2)
    assert bob.receive().payload == b"21"
    bob.expect_silence(0.3)
    late = clients.login("bob", "bob-2")
    late.subscribe("sensors/#", qos=1)
    late.expect_silence(0.5)


def test_deny_holds_for_a_persistent_sessions_backlog(clients: Clients) -> None:
    bob = clients.login("bob", "bob-offline", clean_start=False,
                        properties={"session_expiry_interval": 600})
    bob.subscribe("sensors/#", qos=1)
    bob.disconnect()
    publisher = _sensor_publisher(clients)
    publisher.publish("sensors/secret/key", b"s3cret", qos=1)
    publisher.publish("sensors/public/temp", b"22", qos=1, packet_id=2)
    back = clients.login("bob", "bob-offline", clean_start=False,
                         properties={"session_expiry_interval": 600})
    assert back.receive().payload == b"22"
    back.expect_silence(0.3)


def _sensor_publisher(clients: Clients) -> RawClient:
    return clients.login("sensor", "sensor-writer")


# -- 4. only the broker writes $SYS (and other `$` topics) --------------------------------------

def test_clients_cannot_spoof_sys_topics(clients: Clients) -> None:
    bob = clients.login("bob", "bob-sys")
    bob.subscribe("$SYS/broker/spoof/#", qos=1)
    alice = clients.login("alice", "alice-sys")
    assert puback(alice.publish("$SYS/broker/spoof/uptime", b"0", qos=1)) == 0x87
    assert puback(alice.publish("$private/x", b"0", qos=1, packet_id=2)) == 0x87
    bob.expect_silence(0.3)


def test_clients_cannot_spoof_sys_on_the_default_config(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()
    with RawClient(gw.port) as watcher, RawClient(gw.port) as spoofer:
        watcher.connect("watcher")
        watcher.subscribe("$SYS/broker/spoof", qos=1)
        spoofer.connect("spoofer")
        assert puback(spoofer.publish("$SYS/broker/spoof", b"fake", qos=1, retain=True)) == 0x87
        watcher.expect_silence(0.3)


def test_a_will_cannot_target_sys(clients: Clients) -> None:
    from gateway.mqtt.packets import Will

    client = clients.raw()
    connack = client.connect("willy", username="alice", password=b"alice-pw",
                             will=Will("$SYS/broker/fake", b"x", 0, False))
    assert connack.reason_code == 0x87


# -- 6. topics deep enough to break recursive matching --------------------------------------------

def test_deep_topics_are_refused_and_nobody_is_disconnected(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()
    deep = "/".join(["a"] * 1500)
    with RawClient(gw.port) as sub, RawClient(gw.port) as pub:
        sub.connect("deep-sub")
        assert sub.subscribe("#", qos=1).reason_codes == [1]
        assert sub.subscribe("/".join(["+"] * 1500), qos=1, packet_id=2).reason_codes == [0x8F]
        pub.connect("deep-pub")
        assert puback(pub.publish(deep, b"x", qos=1, retain=True)) == 0x90
        assert puback(pub.publish("a/b", b"ok", qos=1, packet_id=2)) == 0
        assert sub.receive().payload == b"ok"
    gw.restart()
    with RawClient(gw.port) as sub:
        sub.connect("deep-sub-2")
        sub.subscribe("#", qos=1)
        sub.expect_silence(0.3)


# -- 2b. a resumed session is authorized again ----------------------------------------------

def test_a_resumed_session_loses_subscriptions_the_acl_no_longer_grants(
        tmp_path: Path, clients: Clients, gateway: GatewayProcess) -> None:
    props = {"session_expiry_interval": 600}
    bob = clients.login("bob", "bob-resume", clean_start=False, properties=props)
    assert bob.subscribe("sensors/#", qos=1).reason_codes == [1]
    bob.disconnect()
    (tmp_path / "acl").write_text(ACL.replace("topic read sensors/#\n", ""))
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: "reload" in gateway.log())
    publisher = _sensor_publisher(clients)
    publisher.publish("sensors/public/temp", b"23", qos=1)
    back = clients.login("bob", "bob-resume", clean_start=False, properties=props)
    back.expect_silence(0.5)
    assert "subscription sensors/# no longer allowed" in gateway.log()


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
