"""CONNECT and the life of a connection: client ids, keepalive at 1.5x, session takeover,
the CONNECT timeout and anonymous access."""

from __future__ import annotations

import time

import pytest

from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Connack,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Will,
)
from gateway.mqtt.properties import Properties
from tests.conftest import GatewayFactory
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess


def test_311_connack_is_byte_exact(broker: GatewayProcess, tag: str) -> None:
    with RawClient(broker.port, MQTT_311) as client:
        client.send(b"\x10" + bytes([12 + len(tag)]) + b"\x00\x04MQTT\x04\x02\x00\x3c"
                    + len(tag).to_bytes(2, "big") + tag.encode())
        client.expect(Connack)
        assert bytes(client.raw_in) == b"\x20\x02\x00\x00"


def test_311_empty_client_id_with_clean_session_is_accepted(broker: GatewayProcess) -> None:
    with RawClient(broker.port, MQTT_311) as client:
        assert client.connect("", clean_start=True).reason_code == 0


def test_v5_empty_client_id_gets_an_assigned_identifier(broker: GatewayProcess) -> None:
    with RawClient(broker.port) as a, RawClient(broker.port) as b:
        id_a = a.connect("").properties["assigned_client_identifier"]
        id_b = b.connect("").properties["assigned_client_identifier"]
        assert id_a and id_b and id_a != id_b


def test_pingreq_gets_pingresp(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, tag) as client:
        client.send_packet(PingReq())
        client.expect(PingResp)
        assert bytes(client.raw_in).endswith(b"\xd0\x00")


def test_keepalive_is_enforced_at_one_and_a_half_times(broker: GatewayProcess,
                                                       tag: str) -> None:
    """Keepalive 1: silent clients are closed after 1.5 s (5.0 with DISCONNECT 0x8D, 3.1.1
    with a plain close) and their wills go out; a client sending PINGREQ stays. All three
    run side by side to keep the test short."""
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will/+")
        silent = {version: connected(broker.port, f"{tag}-{version}", version, keepalive=1,
                                     will=Will(f"{tag}/will/{version}", b"timed out"))
                  for version in (MQTT_311, MQTT_5)}
        pinger = connected(broker.port, f"{tag}-ping", MQTT_5, keepalive=1)
        start = time.monotonic()
        closed: dict[int, tuple[float, list[Packet]]] = {}
        while time.monotonic() - start < 2.6:  # 1.5 x keepalive plus the 1 s tick
            pinger.send_packet(PingReq())
            pinger.expect(PingResp)
            for version, client in silent.items():
                if version not in closed:
                    try:
                        packets = client.read_until_closed(0.2)
                    except TimeoutError:
                        continue
                    closed[version] = (time.monotonic() - start, packets)
            if len(closed) == len(silent):
                pinger.expect_silence(0.4)
        assert sorted(closed) == [MQTT_311, MQTT_5], "a silent client was not closed"
        for elapsed, _ in closed.values():
            assert 1.4 <= elapsed <= 3.0, elapsed
        assert closed[MQTT_311][1] == []  # 3.1.1 has no server DISCONNECT: a close
        assert closed[MQTT_5][1] == [Disconnect(0x8D, closed[MQTT_5][1][0].properties)]  # type: ignore[union-attr]
        assert sorted(watcher.receive().topic for _ in silent) == [  # abnormal: wills go
            f"{tag}/will/{MQTT_311}", f"{tag}/will/{MQTT_5}"]
        pinger.send_packet(PingReq())  # the pinging client is still connected
        pinger.expect(PingResp)
        pinger.close()


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_session_takeover_disconnects_the_first_connection(broker: GatewayProcess, tag: str,
                                                           version: int) -> None:
    expiry: Properties | None = {"session_expiry_interval": 60} if version == MQTT_5 else None
    first = connected(broker.port, tag, version, clean_start=False, properties=expiry)
    first.subscribe(f"{tag}/t", qos=1)
    with RawClient(broker.port, version) as second:
        assert second.connect(tag, clean_start=False, properties=expiry).session_present
        if version == MQTT_5:
            first.expect_disconnect(0x8E)
        else:
            assert first.read_until_closed() == []
        with connected(broker.port, f"{tag}-p") as pub:  # the session went to the new one
            pub.publish(f"{tag}/t", b"to the second", 1)
        assert second.receive().payload == b"to the second"
        second.disconnect(properties={"session_expiry_interval": 0} if expiry else None)
    first.close()


def test_takeover_does_not_publish_the_will_of_a_resumed_delayed_session(
        broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        expiry: Properties = {"session_expiry_interval": 60}
        first = connected(broker.port, tag, properties=expiry,
                          will=Will(f"{tag}/will", b"x", 0, False, {"will_delay_interval": 30}))
        second = connected(broker.port, tag, clean_start=False, properties=expiry)
        first.expect_disconnect(0x8E)
        watcher.expect_silence(0.3)
        second.disconnect(properties={"session_expiry_interval": 0})


def test_connect_timeout_closes_silent_sockets(tight_gateway: GatewayProcess) -> None:
    gw = tight_gateway  # connect_timeout = 0.5
    with RawClient(gw.port) as idle:
        start = time.monotonic()
        assert idle.read_until_closed(4.0) == []
        assert time.monotonic() - start <= 2.5
    with connected(gw.port, "after") as client:  # and the broker still serves
        client.send_packet(PingReq())
        client.expect(PingResp)


def test_anonymous_access_can_be_refused(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory("[auth]\nallow_anonymous = false\n")
    with RawClient(gw.port, MQTT_311) as old:
        assert old.connect("anon").reason_code == 0x05
        assert old.read_until_closed() == []
    with RawClient(gw.port, MQTT_5) as new:
        assert new.connect("anon").reason_code == 0x87
        assert new.read_until_closed() == []


def test_a_client_id_taken_over_again_and_again_is_logged_as_a_duplicate(
        gateway: GatewayProcess) -> None:
    """Two boards with one device id knock each other off: the log says so (issue 19)."""
    clients = []
    for _ in range(4):
        client = RawClient(gateway.port, MQTT_5)
        assert client.connect("light-twin").reason_code == 0
        clients.append(client)
    for client in clients:
        client.close()
    log = gateway.log()
    assert "client id light-twin taken over 3 times in 60 s" in log
    assert log.count("two devices may be using the same id") == 1
