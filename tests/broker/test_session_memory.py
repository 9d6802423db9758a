"""What a persistent session costs once drained and offline: a few KB, whatever it carried."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from gateway.broker.backlog import BacklogContext
from gateway.broker.session import Outgoing, Session
from gateway.messages import received
from gateway.mqtt.packets import MQTT_311, PubAck
from tests.broker.test_backlog import rss_kib
from tests.conftest import GatewayFactory
from tests.support.clients import RawClient, connected


@dataclass
class Link:
    """A connection that takes every PUBLISH (the Link protocol, no socket)."""

    sent: list[int] = field(default_factory=list)

    def send_publish(self, out: Outgoing, packet_id: int) -> None:
        self.sent.append(packet_id)

    def send_pubrel(self, packet_id: int) -> None:
        self.sent.append(packet_id)

    def writable(self) -> bool:
        return True


class NoStore:
    def read_backlog(self, *_args: object) -> None:
        raise AssertionError("nothing is on disk")

    def remove_message(self, row_id: int) -> None:
        pass

    def remove_oldest(self, client_id: str, after: int) -> None:
        pass


def test_a_drained_burst_leaves_no_table_behind() -> None:
    """CPython dicts keep their table when emptied: 2,000 messages once in flight would cost
    the offline session ~90 KB for as long as it lives."""
    session = Session.new("dev", BacklogContext(NoStore(), lambda: 0.0), expiry=3600)
    link = Link()
    session.resume(link)
    message = received("t", b"x", 1, False, {}, "p", 0.0)
    for _ in range(2000):
        session.deliver(Outgoing(message, 1))
    for packet_id in list(link.sent):
        session.mqtt.puback(PubAck(packet_id))
    session.detach()
    assert sys.getsizeof(session.mqtt.inflight) < 1024


def test_a_thousand_drained_persistent_sessions_cost_a_few_kb_each(
        gateway_factory: GatewayFactory, tag: str) -> None:
    gw = gateway_factory()
    assert gw.proc is not None
    with connected(gw.port, f"{tag}-pub", MQTT_311) as pub:
        def cycle(i: int) -> None:
            with RawClient(gw.port, MQTT_311) as device:
                device.connect(f"{tag}-{i}", clean_start=False)
                device.subscribe(f"{tag}/{i}", qos=1)
                for n in range(5):
                    pub.publish(f"{tag}/{i}", b"x" * 200, 1, packet_id=n + 1)
                for _ in range(5):
                    device.receive()
                device.disconnect()
        for i in range(100):  # warm-up: the store's page cache, the allocator's arenas
            cycle(i)
        before = rss_kib(gw.proc.pid)
        for i in range(100, 1100):
            cycle(i)
    assert (rss_kib(gw.proc.pid) - before) * 1024 / 1000 < 8 * 1024
