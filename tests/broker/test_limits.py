"""Limits on what a client can create: subscriptions per client, connections per user and
messages in flight per client; each refusal has a reason code, a log line and a metric."""

from __future__ import annotations

from gateway.mqtt.packets import MQTT_311, PubAck
from gateway.mqtt.reasons import Reason
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin
from tests.support.clients import RawClient, connected

LIMITED = """
[mqtt]
max_subscriptions_per_client = 3
max_connections_per_user = 2
max_inflight_messages = 5
"""


def test_subscriptions_beyond_the_limit_get_quota_exceeded(gateway_factory: GatewayFactory,
                                                           tag: str) -> None:
    gw = gateway_factory(LIMITED)
    with connected(gw.port, tag) as client:
        assert client.subscribe("a", "b", "c", "d", qos=1).reason_codes == [
            1, 1, 1, Reason.QUOTA_EXCEEDED]
        assert client.subscribe("a", qos=0, packet_id=2).reason_codes == [0]  # a replacement
    with connected(gw.port, f"{tag}-311", MQTT_311) as old:
        assert old.subscribe("a", "b", "c", "d", qos=1).reason_codes == [1, 1, 1, 0x80]
    assert "subscription refused" in gw.log()
    assert "edgeq_limits_subscriptions_refused_total 2.0" in Admin(gw).metrics()


def test_connections_beyond_the_limit_per_user_are_refused(gateway_factory: GatewayFactory,
                                                           tag: str) -> None:
    gw = gateway_factory(LIMITED)
    with connected(gw.port, f"{tag}-1", username="site"), \
            connected(gw.port, f"{tag}-2", username="site"):
        with RawClient(gw.port) as third:
            assert third.connect(f"{tag}-3", username="site").reason_code == \
                Reason.QUOTA_EXCEEDED
        with RawClient(gw.port, MQTT_311) as third:
            assert third.connect(f"{tag}-3", username="site").reason_code == 3
        with connected(gw.port, f"{tag}-2", username="site"):  # takes over its own session
            pass
        with connected(gw.port, f"{tag}-3", username="other"):
            pass
    assert "connection refused: user site" in gw.log()
    assert "edgeq_limits_connections_refused_total 2.0" in Admin(gw).metrics()


def test_messages_in_flight_per_client_are_capped(gateway_factory: GatewayFactory,
                                                  tag: str) -> None:
    gw = gateway_factory(LIMITED)  # the subscriber asks for no Receive Maximum (65,535)
    with connected(gw.port, tag) as sub, connected(gw.port, f"{tag}-pub") as pub:
        sub.subscribe(f"{tag}/t", qos=1)
        for i in range(8):
            pub.publish(f"{tag}/t", b"%d" % i, 1, packet_id=i + 1)
        first = [sub.receive(ack=False) for _ in range(5)]
        sub.expect_silence(0.3)
        sub.send_packet(PubAck(first[0].packet_id))
        assert sub.receive(ack=False).payload == b"5"
        sub.expect_silence(0.3)
