"""Bad input, byte-exact (Mosquitto's black-box style): each case closes only the offending
client, with the matching 5.0 reason code (a plain close for 3.1.1), and a well-behaved client
connected all along still gets its messages afterwards. The `broker` fixture then checks that
the process is alive."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, Disconnect, Will
from tests.support.clients import RawClient, connected, fixed_header, utf8
from tests.support.procs import GatewayProcess

MAX_PACKET = 65536  # the shared gateway's mqtt.max_packet_size


def publish_v5(topic: bytes, payload: bytes = b"x", first: int = 0x30) -> bytes:
    body = utf8(topic) + b"\x00" + payload  # property length 0
    return fixed_header(first, len(body)) + body


def publish_v311(topic: bytes, payload: bytes = b"x") -> bytes:
    body = utf8(topic) + payload
    return fixed_header(0x30, len(body)) + body


def connect_v311(client_id: bytes, flags: int = 0x02, level: int = 4,
                 name: bytes = b"MQTT") -> bytes:
    body = utf8(name) + bytes((level, flags)) + b"\x00\x3c" + utf8(client_id)
    return fixed_header(0x10, len(body)) + body


def connect_v5(client_id: bytes) -> bytes:
    body = utf8(b"MQTT") + b"\x05\x02\x00\x3c\x00" + utf8(client_id)
    return fixed_header(0x10, len(body)) + body


@dataclass(frozen=True)
class Case:
    version: int  # of the CONNECT sent first; 0: no CONNECT at all
    data: bytes
    reason: int | None = None  # 5.0: the DISCONNECT reason code
    raw_reply: bytes = b""  # otherwise: exactly these bytes, then a close


CASES = {
    # oversized: refused from the fixed header alone; the body is never sent
    "oversized-header-only-v5": Case(MQTT_5, fixed_header(0x30, MAX_PACKET + 1), 0x95),
    "oversized-max-varint-v5": Case(MQTT_5, b"\x30\xff\xff\xff\x7f", 0x95),
    "oversized-header-only-v311": Case(MQTT_311, fixed_header(0x30, 10_000_000)),
    "oversized-subscribe-v5": Case(MQTT_5, fixed_header(0x82, 1_000_000), 0x95),
    # reserved flags
    "pingreq-flags-0xC1": Case(MQTT_5, b"\xc1\x00", 0x81),
    "subscribe-flags-0x80": Case(MQTT_5, b"\x80\x06\x00\x01\x00\x01a\x00", 0x81),
    "pubrel-flags-0x60": Case(MQTT_5, b"\x60\x02\x00\x01", 0x81),
    "publish-qos-3": Case(MQTT_5, b"\x36\x07\x00\x01a\x00\x01\x00x", 0x81),
    "reserved-flags-v311": Case(MQTT_311, b"\xc1\x00"),
    # malformed
    "invalid-utf8-topic": Case(MQTT_5, publish_v5(b"a/\xc3\x28"), 0x81),
    "utf8-overlong-slash": Case(MQTT_5, publish_v5(b"a\xc0\xafb"), 0x81),
    "nul-in-topic": Case(MQTT_5, publish_v5(b"a\x00b"), 0x81),
    "surrogate-in-topic": Case(MQTT_5, publish_v5(b"a\xed\xa0\x80"), 0x81),
    "topic-longer-than-packet": Case(MQTT_5, b"\x30\x05\x00\x10abc", 0x81),
    "remaining-length-5-bytes": Case(MQTT_5, b"\x30\xff\xff\xff\xff\x01", 0x81),
    "reserved-packet-type-0": Case(MQTT_5, b"\x00\x00", 0x81),
    "publish-packet-id-0": Case(MQTT_5, b"\x32\x06\x00\x01a\x00\x00\x00", 0x81),
    "disconnect-bad-reason": Case(MQTT_5, b"\xe0\x01\x03", 0x81),
    "invalid-utf8-topic-v311": Case(MQTT_311, publish_v311(b"\xff\xfe")),
    # topic name rules
    "wildcard-plus-in-publish": Case(MQTT_5, publish_v5(b"a/+/b"), 0x90),
    "wildcard-hash-in-publish": Case(MQTT_5, publish_v5(b"a/#"), 0x90),
    "wildcard-in-publish-v311": Case(MQTT_311, publish_v311(b"a/#")),
    # protocol errors
    "second-connect-v5": Case(MQTT_5, connect_v5(b"again"), 0x82),
    "second-connect-v311": Case(MQTT_311, connect_v311(b"again")),
    "connack-from-client": Case(MQTT_5, b"\x20\x03\x00\x00\x00", 0x82),
    "subscribe-without-filters": Case(MQTT_5, b"\x82\x03\x00\x01\x00", 0x82),
    "retain-handling-3": Case(MQTT_5, b"\x82\x07\x00\x01\x00\x00\x01a\x30", 0x82),
    "empty-topic-without-alias": Case(MQTT_5, publish_v5(b""), 0x82),
    # before CONNECT, and refused CONNECTs
    "publish-before-connect": Case(0, publish_v311(b"a")),
    "pingreq-before-connect": Case(0, b"\xc0\x00"),
    "subscribe-before-connect": Case(0, b"\x82\x06\x00\x01\x00\x01a\x00"),
    "unknown-protocol-level-6": Case(0, connect_v311(b"c", level=6), raw_reply=b"\x20\x02\x00\x01"),
    "unknown-protocol-level-3-mqtt": Case(0, connect_v311(b"c", level=3),
                                          raw_reply=b"\x20\x02\x00\x01"),
    "empty-client-id-clean-0-v311": Case(0, connect_v311(b"", flags=0x00),
                                         raw_reply=b"\x20\x02\x00\x02"),
    "unknown-protocol-name": Case(0, connect_v311(b"c", name=b"MQTX")),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_closes_only_that_client(broker: GatewayProcess, tag: str,
                                           case: Case) -> None:
    with connected(broker.port, f"{tag}-ok", MQTT_5) as witness:
        witness.subscribe(f"{tag}/ok", qos=1)
        with RawClient(broker.port, case.version or MQTT_311) as bad:
            if case.version:
                bad.connect(f"{tag}-bad")
            before = len(bad.raw_in)
            bad.send(case.data)
            packets = bad.read_until_closed()
            if case.reason is not None:
                assert len(packets) == 1 and isinstance(packets[0], Disconnect), packets
                assert packets[0].reason_code == case.reason, (
                    f"0x{packets[0].reason_code:02X}: {packets[0].properties}")
            else:
                assert bytes(bad.raw_in[before:]) == case.raw_reply
        if case.version:  # logged once
            assert broker.log().count(f"closing {tag}-bad ") == 1
        with connected(broker.port, f"{tag}-pub", MQTT_311) as pub:
            pub.publish(f"{tag}/ok", b"still serving", 1)
        assert witness.receive().payload == b"still serving"


def test_oversized_packet_is_refused_before_its_body(broker: GatewayProcess, tag: str) -> None:
    """The announced length alone gets DISCONNECT 0x95, quickly; nothing is buffered."""
    with connected(broker.port, tag) as bad:
        start = time.monotonic()
        bad.send(fixed_header(0x30, 200_000_000))
        bad.expect_disconnect(0x95, timeout=2.0)
        assert time.monotonic() - start < 1.0


def test_packet_of_exactly_the_maximum_size_is_accepted(broker: GatewayProcess,
                                                        tag: str) -> None:
    with connected(broker.port, f"{tag}-s") as sub, connected(broker.port, f"{tag}-p") as pub:
        sub.subscribe(f"{tag}/t")
        topic = f"{tag}/t".encode()
        body_len = MAX_PACKET - 4  # 1 byte type + 3 bytes remaining length
        payload = b"p" * (body_len - len(utf8(topic)) - 1)
        pub.send(fixed_header(0x30, body_len) + utf8(topic) + b"\x00" + payload)
        assert len(sub.receive().payload) == len(payload)


def test_truncated_packet_then_close_is_an_abnormal_disconnect(broker: GatewayProcess,
                                                               tag: str) -> None:
    with connected(broker.port, f"{tag}-ok") as witness:
        witness.subscribe(f"{tag}/will")
        bad = connected(broker.port, f"{tag}-bad", MQTT_311, will=Will(f"{tag}/will", b"cut"))
        part = utf8(f"{tag}/t") + b"only part"
        bad.send(fixed_header(0x30, len(part) + 100) + part)
        bad.close()
        assert witness.receive().payload == b"cut"  # the will of an abnormal disconnect


def test_truncated_connect_then_close(broker: GatewayProcess, tag: str) -> None:
    with RawClient(broker.port) as bad:
        bad.send(connect_v5(tag.encode())[:9])
    with connected(broker.port, tag) as good:  # the same client id is free and fine
        good.subscribe(f"{tag}/t")


def test_bad_bytes_one_at_a_time_still_get_the_reason_code(broker: GatewayProcess,
                                                           tag: str) -> None:
    with connected(broker.port, tag) as bad:
        for byte in publish_v5(b"a/+"):
            bad.send(bytes((byte,)))
        bad.expect_disconnect(0x90)
