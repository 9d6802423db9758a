"""The sans-IO session (`gateway.mqtt.session`) driven with packets alone: no socket, no loop."""

from __future__ import annotations

import sys

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, PubComp, Publish, PubRec, PubRel
from gateway.mqtt.properties import Properties
from gateway.mqtt.reasons import MQTTError, Reason
from gateway.mqtt.session import MqttSession


def v5(keepalive: int = 0, receive_maximum: int = 65535, send_maximum: int = 65535,
       alias_maximum: int = 0, alias_maximum_out: int = 0) -> MqttSession[str]:
    session: MqttSession[str] = MqttSession()
    session.connect(MQTT_5, keepalive=keepalive, receive_maximum=receive_maximum,
                    send_maximum=send_maximum, alias_maximum=alias_maximum,
                    alias_maximum_out=alias_maximum_out)
    return session


# ---------------------------------------------------------------- outbound


def test_qos1_out_holds_the_message_until_puback() -> None:
    s = v5()
    pid = s.publish("m1")
    assert s.inflight == {pid: "m1"}
    assert s.puback(PubAck(pid)) == "m1"
    assert s.inflight == {}
    assert s.puback(PubAck(pid)) is None  # a second PUBACK finishes nothing


def test_qos2_out_pubrec_then_pubrel_then_pubcomp() -> None:
    s = v5()
    pid = s.publish("m")
    item, release = s.pubrec(PubRec(pid))
    assert (item, release) == ("m", PubRel(pid))
    assert s.released(pid) and s.window() == 65535 - 1  # still in flight until PUBCOMP
    assert s.pubcomp(PubComp(pid)) == "m"
    assert not s.released(pid) and s.inflight == {}


def test_refused_pubrec_finishes_the_message_without_pubrel() -> None:
    s = v5()
    pid = s.publish("m")
    assert s.pubrec(PubRec(pid, Reason.NOT_AUTHORIZED)) == ("m", None)
    assert s.inflight == {}


def test_pubrec_for_an_unknown_id_answers_pubrel_0x92() -> None:
    assert v5().pubrec(PubRec(7)) == (None, PubRel(7, Reason.PACKET_IDENTIFIER_NOT_FOUND))


def test_packet_ids_skip_those_in_use_and_wrap_after_65535() -> None:
    s = v5()
    first = s.publish("a")
    reserved = s.reserve()  # a SUBSCRIBE awaiting its SUBACK
    assert len({first, reserved, s.publish("b")}) == 3
    s.forget(first)
    s._next_id = 65535  # start at the top: the wrap is what is tested
    assert s.publish("c") == 65535
    assert s.publish("d") == 1  # id 1 was freed; 2 (reserved) and 3 ("b") are skipped next
    assert s.publish("e") == 4
    s.unreserve(reserved)
    assert reserved not in s.inflight


def test_window_follows_the_peers_receive_maximum() -> None:
    s = v5(send_maximum=2)
    a = s.publish("a")
    s.publish("b")
    assert s.window() == 0
    s.puback(PubAck(a))
    assert s.window() == 1


def test_resend_after_reconnect_lists_pubrel_for_released_and_publish_for_the_rest() -> None:
    s = v5()
    a, b, c = s.publish("a"), s.publish("b"), s.publish("c")
    s.pubrec(PubRec(b))
    s.connect(MQTT_5)  # a new connection: the session's messages stay in flight
    assert s.resend() == [(a, "a", False), (b, "b", True), (c, "c", False)]


def test_restore_from_storage() -> None:
    s: MqttSession[str] = MqttSession()
    s.restore(9, "stored", released=True)
    s.restore_incoming([4, 5])
    assert s.resend() == [(9, "stored", True)]
    assert s.receive(Publish("t", b"", 2, packet_id=4)) is None


def test_outbound_topic_aliases_first_come_first_served_up_to_the_peers_maximum() -> None:
    s = v5(alias_maximum_out=1)
    props: Properties = {}
    assert s.outgoing_topic("a/b", props) == "a/b"
    assert props == {"topic_alias": 1}
    again: Properties = {}
    assert s.outgoing_topic("a/b", again) == ""
    assert again == {"topic_alias": 1}
    other: Properties = {}
    assert s.outgoing_topic("c", other) == "c"
    assert other == {}  # no alias left
    s.connect(MQTT_5, alias_maximum_out=1)  # aliases last one connection
    fresh: Properties = {}
    assert s.outgoing_topic("c", fresh) == "c"
    assert fresh == {"topic_alias": 1}


# ---------------------------------------------------------------- inbound


def test_inbound_qos1_counts_until_acknowledged() -> None:
    s = v5(receive_maximum=1)
    p = Publish("t", b"x", 1, packet_id=3)
    assert s.receive(p) == "t"
    s.expect_ack()
    with pytest.raises(MQTTError) as e:
        s.receive(Publish("t", b"y", 1, packet_id=4))
    assert e.value.reason == Reason.RECEIVE_MAXIMUM_EXCEEDED
    assert s.receive(Publish("t", b"x", 1, dup=True, packet_id=3)) == "t"  # a resend is not new
    assert s.ack(p, Reason.NO_MATCHING_SUBSCRIBERS) == PubAck(3, Reason.NO_MATCHING_SUBSCRIBERS)
    assert s.receive(Publish("t", b"y", 1, packet_id=4)) == "t"


def test_inbound_qos2_duplicate_until_pubrel() -> None:
    s = v5()
    p = Publish("t", b"x", 2, packet_id=8)
    assert s.receive(p) == "t"
    s.expect_ack()
    assert s.ack(p) == PubRec(8)
    assert s.receive(p) is None  # sent again before PUBREL: answer PUBREC, do not route
    assert s.pubrel(PubRel(8)) == PubComp(8)
    assert s.inbound_unacked == 0
    assert s.receive(p) == "t"  # a new message with a reused id
    assert s.pubrel(PubRel(8)) == PubComp(8, Reason.PACKET_IDENTIFIER_NOT_FOUND)


def test_a_refused_qos2_message_is_not_remembered() -> None:
    s = v5()
    p = Publish("t", b"x", 2, packet_id=8)
    s.expect_ack()
    assert s.ack(p, Reason.NOT_AUTHORIZED, {"reason_string": "no"}) == \
        PubRec(8, Reason.NOT_AUTHORIZED, {"reason_string": "no"})
    assert s.inbound_unacked == 0 and s.receive(p) == "t"


def test_3_1_1_acks_carry_no_reason_and_have_no_flow_control() -> None:
    s: MqttSession[str] = MqttSession()
    s.connect(MQTT_311, receive_maximum=1, alias_maximum=5)
    p = Publish("t", b"x", 2, packet_id=1)
    s.expect_ack()
    assert s.receive(Publish("t", b"y", 1, packet_id=2)) == "t"  # no Receive Maximum in 3.1.1
    assert s.ack(p, Reason.NOT_AUTHORIZED, {"reason_string": "no"}) == PubRec(1)
    assert s.receive(p) is None  # 3.1.1 cannot refuse: the message counts as received
    assert s.alias_maximum == 0


def test_inbound_topic_alias_set_then_used() -> None:
    s = v5(alias_maximum=2)
    assert s.receive(Publish("a/b", b"", properties={"topic_alias": 2})) == "a/b"
    assert s.receive(Publish("", b"", properties={"topic_alias": 2})) == "a/b"


@pytest.mark.parametrize(("packet", "reason"), [
    (Publish("", b"", properties={"topic_alias": 3}), Reason.TOPIC_ALIAS_INVALID),
    (Publish("", b"", properties={"topic_alias": 0}), Reason.TOPIC_ALIAS_INVALID),
    (Publish("", b"", properties={"topic_alias": 1}), Reason.PROTOCOL_ERROR),
    (Publish("", b""), Reason.TOPIC_NAME_INVALID),
    (Publish("t", b"", 2, packet_id=1), Reason.QOS_NOT_SUPPORTED),
    (Publish("t", b"", retain=True), Reason.RETAIN_NOT_SUPPORTED),
])
def test_inbound_violations_raise_their_reason(packet: Publish, reason: int) -> None:
    s: MqttSession[str] = MqttSession()
    s.connect(MQTT_5, alias_maximum=2, max_qos=1, retain_available=False)
    with pytest.raises(MQTTError) as e:
        s.receive(packet)
    assert e.value.reason == reason


# ---------------------------------------------------------------- connection scope


def test_keepalive_is_broken_after_one_and_a_half_intervals() -> None:
    s = v5(keepalive=10)
    assert not s.silent(15.0) and s.silent(15.1)
    s.connect(MQTT_5, keepalive=0)
    assert not s.silent(1e9)


def test_reason_strings_only_when_problem_information_is_wanted() -> None:
    s: MqttSession[str] = MqttSession()
    s.connect(MQTT_5, problem_info=False)
    assert s.reason_props("why") == {}
    s.connect(MQTT_5)
    assert s.reason_props("x" * 300) == {"reason_string": "x" * 200}


def test_an_idle_session_holds_no_tables_after_a_burst() -> None:
    s = v5()
    ids = [s.publish(str(n)) for n in range(2000)]
    for pid in ids[:1000]:
        s.pubrec(PubRec(pid))
    for pid in ids:
        s.forget(pid)
    s.shrink()
    assert sys.getsizeof(s.inflight) < 1024
    assert s.incoming_qos2 is None and not s.released(1)
    assert not hasattr(s, "__dict__")
