"""Offline session backlogs: kept on disk, read back in pages, capped in messages and bytes with
a named policy, not loaded into RAM at restart (gateway/broker/backlog.py)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, Publish, Subscription
from gateway.mqtt.properties import Properties
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def publish_many(port: int, messages: Iterable[tuple[str, bytes]],
                 properties: Properties | None = None, window: int = 50) -> list[int]:
    """QoS 1 publishes from one producer, `window` of them unacknowledged at a time; the PUBACK
    reason codes in order."""
    codes: list[int] = []
    with connected(port, f"producer-{time.monotonic_ns()}", MQTT_5) as producer:
        pending = 0
        for i, (topic, payload) in enumerate(messages):
            producer.send_packet(Publish(topic, payload, 1, False, False, i % 65535 + 1,
                                         properties or {}))
            pending += 1
            if pending >= window:
                codes.append(producer.expect(PubAck).reason_code)
                pending -= 1
        for _ in range(pending):
            codes.append(producer.expect(PubAck).reason_code)
    return codes


def park(port: int, client_id: str, *filters: str) -> None:
    """A 3.1.1 persistent session subscribed at QoS 1, then offline."""
    with RawClient(port, MQTT_311) as client:
        client.connect(client_id, clean_start=False)
        client.subscribe(*filters, qos=1)
        client.disconnect()


def collect(port: int, client_id: str, count: int) -> list[bytes]:
    """Reconnect the persistent session and take `count` messages; nothing more follows."""
    with RawClient(port, MQTT_311) as client:
        assert client.connect(client_id, clean_start=False).session_present
        got = [client.receive().payload for _ in range(count)]
        client.expect_silence(0.3)
        client.disconnect()
    return got


def metric(gw: GatewayProcess, name: str) -> float:
    for line in Admin(gw).metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def rows(gw: GatewayProcess, sql: str) -> int:
    with sqlite3.connect(gw.data_dir / "edgeq.db") as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_a_backlog_larger_than_the_read_ahead_arrives_whole_and_in_order(
        gateway_factory: GatewayFactory, tag: str) -> None:
    gw = gateway_factory()
    park(gw.port, tag, f"{tag}/t")
    assert set(publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(3000)))) == {0}
    assert collect(gw.port, tag, 3000) == [b"%d" % i for i in range(3000)]
    assert rows(gw, "SELECT count(*) FROM session_messages") == 0


def test_a_backlog_survives_a_restart_without_being_loaded(gateway_factory: GatewayFactory,
                                                           tag: str) -> None:
    gw = gateway_factory()
    park(gw.port, tag, f"{tag}/t")
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(1000)))
    gw.restart()
    assert collect(gw.port, tag, 1000) == [b"%d" % i for i in range(1000)]


CAPPED = """
[mqtt]
max_queued_messages = 100
queued_overflow = "{policy}"
"""


def test_at_the_cap_drop_oldest_keeps_the_newest_and_logs_once(
        gateway_factory: GatewayFactory, tag: str) -> None:
    gw = gateway_factory(CAPPED.format(policy="drop_oldest"))
    park(gw.port, tag, f"{tag}/t")
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(150)))
    assert collect(gw.port, tag, 100) == [b"%d" % i for i in range(50, 150)]
    assert gw.log().count("backlog at its cap") == 1
    assert metric(gw, "edgeq_sessions_dropped_total") == 50


def test_at_the_cap_drop_new_keeps_the_oldest(gateway_factory: GatewayFactory,
                                              tag: str) -> None:
    gw = gateway_factory(CAPPED.format(policy="drop_new"))
    park(gw.port, tag, f"{tag}/t")
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(150)))
    assert collect(gw.port, tag, 100) == [b"%d" % i for i in range(100)]
    assert gw.log().count("backlog at its cap") == 1
    assert metric(gw, "edgeq_sessions_dropped_total") == 50
    assert rows(gw, "SELECT count(*) FROM session_messages") == 0


def test_the_byte_cap_counts_user_properties(gateway_factory: GatewayFactory,
                                             tag: str) -> None:
    """Ten messages of 100 user properties each: about 20 KB in RAM, not the 10 bytes of
    their payloads; a 64 KB cap keeps only the last few."""
    gw = gateway_factory("[mqtt]\nmax_queued_bytes = 65536\n")
    park(gw.port, tag, f"{tag}/t")
    heavy: Properties = {"user_property": [(f"k{i}", "v" * 100) for i in range(100)]}
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(10)), heavy)
    kept = 65536 // (100 * (100 + 2 + 170))
    assert collect(gw.port, tag, kept) == [b"%d" % i for i in range(10 - kept, 10)]


def test_a_thousand_offline_backlogs_stay_on_disk(gateway_factory: GatewayFactory,
                                                  tag: str) -> None:
    """1,000 persistent sessions owed 40 x 2 KiB each (80 MB): RSS stays flat while they
    accumulate and after a restart; each is delivered whole on return."""
    gw = gateway_factory()
    sessions = [f"{tag}-{i}" for i in range(1000)]
    for client_id in sessions:
        park(gw.port, client_id, f"{tag}/{client_id}")
    assert gw.proc is not None
    before = rss_kib(gw.proc.pid)
    payload = b"x" * 2048
    publish_many(gw.port, ((f"{tag}/{c}", b"%d" % n + payload) for n in range(40)
                           for c in sessions))
    assert rss_kib(gw.proc.pid) - before < 24 * 1024
    assert rows(gw, "SELECT count(*) FROM session_messages") == 40_000
    gw.restart()
    assert gw.proc is not None
    assert rss_kib(gw.proc.pid) < before + 24 * 1024
    for client_id in sessions[::100]:
        assert collect(gw.port, client_id, 40) == [b"%d" % n + payload for n in range(40)]


def test_a_backlog_keeps_each_delivery_as_the_client_asked_for_it(
        gateway_factory: GatewayFactory, tag: str) -> None:
    """Retain as published and the subscription identifier are per delivery: they are stored
    with the owed message, also across a restart."""
    gw = gateway_factory()
    expiry: Properties = {"session_expiry_interval": 600}
    with connected(gw.port, tag, properties=expiry) as sub:
        sub.subscribe(Subscription(f"{tag}/+", 1, retain_as_published=True),
                      properties={"subscription_identifier": [9]})
        sub.disconnect()
    with connected(gw.port, f"{tag}-pub") as pub:
        pub.publish(f"{tag}/r", b"kept", 1, retain=True)
    gw.restart()
    with RawClient(gw.port) as back:
        assert back.connect(tag, clean_start=False, properties=expiry).session_present
        got = back.receive()
        assert (got.payload, got.retain, got.properties.get("subscription_identifier")) == (
            b"kept", True, [9])


def test_out_of_order_acknowledgements_then_a_restart_resend_only_the_rest(
        gateway_factory: GatewayFactory, tag: str) -> None:
    """Rows acknowledged in order go by range, the others one by one: after acknowledging every
    second message (not the first) and a restart, exactly the others come again, in order."""
    gw = gateway_factory()
    park(gw.port, tag, f"{tag}/t")
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(20)))
    with RawClient(gw.port, MQTT_311) as sub:
        assert sub.connect(tag, clean_start=False).session_present
        got = [sub.receive(ack=False) for _ in range(20)]
        for publish in got[1::2]:
            sub.send_packet(PubAck(publish.packet_id))
        sub.send_packet(PubAck(got[0].packet_id))  # the oldest last: the range moves past 1
        sub.expect_silence(0.3)
    gw.restart()
    assert collect(gw.port, tag, 9) == [b"%d" % i for i in range(2, 20, 2)]
    gw.restart()
    with RawClient(gw.port, MQTT_311) as again:
        assert again.connect(tag, clean_start=False).session_present
        again.expect_silence(0.3)
    assert rows(gw, "SELECT count(*) FROM session_messages") == 0


def test_rows_acknowledged_in_order_are_deleted_while_others_are_in_flight(
        gateway_factory: GatewayFactory, tag: str) -> None:
    """The range delete of acknowledged rows waits for at most a second (the tick), not for
    the rest of the window."""
    gw = gateway_factory()
    park(gw.port, tag, f"{tag}/t")
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(30)))
    with RawClient(gw.port, MQTT_311) as sub:
        assert sub.connect(tag, clean_start=False).session_present
        got = [sub.receive(ack=False) for _ in range(30)]
        for publish in got[:10]:
            sub.send_packet(PubAck(publish.packet_id))
        deadline = time.monotonic() + 5
        while rows(gw, "SELECT count(*) FROM session_messages") > 20:
            assert time.monotonic() < deadline, "acknowledged rows were not deleted"
            time.sleep(0.1)
        assert rows(gw, "SELECT min(id) = (SELECT max(id) - 19 FROM session_messages) "
                        "FROM session_messages") == 1  # the 20 not acknowledged stay


def test_sigkill_mid_drain_loses_nothing_unacknowledged(gateway_factory: GatewayFactory,
                                                        tag: str) -> None:
    """Killed while a drain acknowledges in order: every message not acknowledged comes again
    after the restart, in order (acknowledged ones may come again too: QoS 1)."""
    gw = gateway_factory()
    park(gw.port, tag, f"{tag}/t")
    publish_many(gw.port, ((f"{tag}/t", b"%d" % i) for i in range(1000)))
    with RawClient(gw.port, MQTT_311) as sub:
        assert sub.connect(tag, clean_start=False).session_present
        acked = [int(sub.receive().payload) for _ in range(600)]
        gw.kill()
    gw.start()
    with RawClient(gw.port, MQTT_311) as back:
        assert back.connect(tag, clean_start=False).session_present
        again = []
        while not again or again[-1] != 999:
            again.append(int(back.receive().payload))
        back.expect_silence(0.3)
    assert acked == list(range(600))
    assert again == list(range(again[0], 1000)) and again[0] <= 600


def test_a_drained_backlog_sends_each_message_with_exactly_its_properties(
        gateway_factory: GatewayFactory, tag: str) -> None:
    """The drain builds PUBLISH heads from the fields (`codec.publish_head`), without a property
    dict when there is nothing to send: messages without properties, with forwarded ones, with
    an expiry, and large ones (a 3-byte remaining length) arrive as published, resent with DUP
    after a reconnect."""
    gw = gateway_factory()
    expiry: Properties = {"session_expiry_interval": 600}
    with connected(gw.port, tag, properties=expiry) as sub:
        sub.subscribe(f"{tag}/+", qos=1)
        sub.disconnect()
    sent: list[tuple[str, bytes, Properties]] = [
        (f"{tag}/plain", b"p", {}),
        (f"{tag}/user", b"u", {"user_property": [("k", "v")], "content_type": "text/plain"}),
        (f"{tag}/expiring", b"e", {"message_expiry_interval": 3600}),
        (f"{tag}/large", b"L" * 20_000, {}),
        (f"{tag}/plain", b"q", {}),
    ]
    with connected(gw.port, f"{tag}-pub") as pub:
        for i, (topic, payload, props) in enumerate(sent):
            pub.publish(topic, payload, 1, packet_id=i + 1, properties=props)
    with RawClient(gw.port) as back:
        assert back.connect(tag, clean_start=False, properties=expiry).session_present
        first = back.receive(ack=False)
        back.close()
    assert (first.topic, first.payload, first.properties, first.dup) == (
        f"{tag}/plain", b"p", {}, False)
    with RawClient(gw.port) as back:
        assert back.connect(tag, clean_start=False, properties=expiry).session_present
        got = [back.receive() for _ in sent]
        back.expect_silence(0.3)
    assert all(p.dup for p in got)  # all of them were in flight when the first went
    for (topic, payload, props), p in zip(sent, got, strict=True):
        expected = dict(props)
        if "message_expiry_interval" in props:  # what is left of it, at least a second
            assert 3590 <= p.properties["message_expiry_interval"] <= 3600
            expected["message_expiry_interval"] = p.properties["message_expiry_interval"]
        assert (p.topic, p.payload, p.qos, p.retain, p.properties) == (
            topic, payload, 1, False, expected)
