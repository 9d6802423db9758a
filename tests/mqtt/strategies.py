"""Hypothesis strategies for valid MQTT packets, per protocol version, and the test settings.

Every packet these strategies build is one the decoder must accept and give back unchanged:
5.0 properties are drawn only from those allowed in that packet, with values in their legal
ranges, and 3.1.1 packets carry nothing 3.1.1 cannot express.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_31,
    MQTT_311,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import TABLE, Properties, Where
from gateway.mqtt.reasons import (
    VALID_AUTH,
    VALID_CONNACK,
    VALID_DISCONNECT,
    VALID_PUBACK,
    VALID_PUBREL,
    VALID_SUBACK,
    VALID_UNSUBACK,
)
from gateway.mqtt.wire import MAX_VARINT

VERSIONS = (MQTT_311, MQTT_5)

# Moderate by default so the whole tests/mqtt run stays well under 20 s; for a deep run,
# EDGEQ_HYPOTHESIS_SCALE=50 multiplies every example count.
_SCALE = int(os.environ.get("EDGEQ_HYPOTHESIS_SCALE", "1"))
_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
FAST = settings(max_examples=30 * _SCALE, deadline=None, suppress_health_check=_HEALTH)
THOROUGH = settings(max_examples=150 * _SCALE, deadline=None, suppress_health_check=_HEALTH)

# ------------------------------------------------------------------------------ primitives

# MQTT UTF-8 strings: any code point except U+0000 and the surrogates [MQTT-1.5.4-1, -2].
MQTT_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
NAME_CHARS = st.characters(codec="utf-8", exclude_characters="\x00+#")


def mqtt_text(max_size: int = 12, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(MQTT_CHARS, min_size=min_size, max_size=max_size)


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
packet_ids = st.integers(1, 0xFFFF)
payloads = st.binary(max_size=40)
qos = st.integers(0, 2)

# Topic names: no wildcards, at least one character; '/', '$' and empty levels allowed.
topic_names = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=16),
    st.lists(st.sampled_from(["a", "b", "", "$SYS", "é", "日本"]), min_size=1, max_size=5)
    .map("/".join).filter(bool),
)


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    """A valid topic filter: literal levels and '+', optionally ending in '#'."""
    levels = draw(st.lists(st.one_of(st.just("+"), st.text(NAME_CHARS, max_size=5)),
                           max_size=5))
    if not "/".join(levels) or draw(st.booleans()):  # a filter is never empty
        levels.append("#")
    return "/".join(levels)


# ------------------------------------------------------------------------------ properties

def _string_pair() -> st.SearchStrategy[tuple[str, str]]:
    return st.tuples(mqtt_text(8), mqtt_text(8))


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": st.integers(0, 1),
    "message_expiry_interval": u32,
    "content_type": mqtt_text(),
    "response_topic": topic_names,
    "correlation_data": st.binary(max_size=16),
    "subscription_identifier": st.lists(st.integers(1, MAX_VARINT), min_size=1, max_size=4),
    "session_expiry_interval": u32,
    "assigned_client_identifier": mqtt_text(),
    "server_keep_alive": u16,
    "authentication_method": mqtt_text(),
    "authentication_data": st.binary(max_size=16),
    "request_problem_information": st.integers(0, 1),
    "will_delay_interval": u32,
    "request_response_information": st.integers(0, 1),
    "response_information": mqtt_text(),
    "server_reference": mqtt_text(),
    "reason_string": mqtt_text(),
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": st.integers(0, 1),
    "retain_available": st.integers(0, 1),
    "user_property": st.lists(_string_pair(), min_size=1, max_size=3),
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": st.integers(0, 1),
    "subscription_identifier_available": st.integers(0, 1),
    "shared_subscription_available": st.integers(0, 1),
}
assert set(_VALUES) == {name for name, _, _ in TABLE.values()}


def properties(where: Where, version: int = MQTT_5) -> st.SearchStrategy[Properties]:
    """Any valid set of the properties allowed in `where`; always empty before 5.0."""
    if version != MQTT_5:
        return st.just(Properties())
    optional = {name: _VALUES[name] for name, _, allowed in TABLE.values() if where in allowed}
    if where is Where.SUBSCRIBE:  # at most one subscription identifier [MQTT-3.8.2.1.2]
        optional["subscription_identifier"] = st.lists(st.integers(1, MAX_VARINT),
                                                       min_size=1, max_size=1)
    return st.fixed_dictionaries({}, optional=optional)  # type: ignore[return-value]


# ------------------------------------------------------------------------------ packets

@st.composite
def wills(draw: st.DrawFn, version: int) -> Will:
    return Will(draw(topic_names), draw(payloads), draw(qos), draw(st.booleans()),
                draw(properties(Where.WILL, version)))


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    level = draw(st.sampled_from([MQTT_31, MQTT_311])) if version != MQTT_5 else MQTT_5
    username = draw(st.none() | mqtt_text())
    # Before 5.0 a password needs a user name [MQTT-3.1.2-22].
    password = draw(st.none() | st.binary(max_size=12))
    if version != MQTT_5 and username is None:
        password = None
    return Connect(
        client_id=draw(mqtt_text(23)),
        protocol_level=level,
        clean_start=draw(st.booleans()),
        keepalive=draw(u16),
        will=draw(st.none() | wills(version)),
        username=username,
        password=password,
        properties=draw(properties(Where.CONNECT, version)),
        protocol_name="MQIsdp" if level == MQTT_31 else "MQTT",
    )


def connacks(version: int) -> st.SearchStrategy[Connack]:
    codes = st.sampled_from(sorted(VALID_CONNACK)) if version == MQTT_5 else st.integers(0, 5)
    return st.builds(Connack, codes, st.booleans(), properties(Where.CONNACK, version))


@st.composite
def publishes(draw: st.DrawFn, version: int) -> Publish:
    q = draw(qos)
    props = draw(properties(Where.PUBLISH, version))
    # An empty topic name is only allowed together with a topic alias (5.0 §3.3.2.1).
    topic = draw(st.just("") | topic_names) if "topic_alias" in props else draw(topic_names)
    return Publish(
        topic=topic,
        payload=draw(payloads),
        qos=q,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if q else False,
        packet_id=draw(packet_ids) if q else 0,
        properties=props,
    )


def _acks(cls: type[PubAck | PubRec | PubRel | PubComp], where: Where,
          valid: frozenset[int], version: int) -> st.SearchStrategy[Packet]:
    if version != MQTT_5:
        return st.builds(cls, packet_ids)
    return st.builds(cls, packet_ids, st.sampled_from(sorted(valid)), properties(where))


def subscriptions(version: int) -> st.SearchStrategy[Subscription]:
    if version != MQTT_5:
        return st.builds(Subscription, topic_filters(), qos)
    return st.builds(Subscription, topic_filters(), qos, st.booleans(), st.booleans(),
                     st.integers(0, 2))


def subscribes(version: int) -> st.SearchStrategy[Subscribe]:
    return st.builds(Subscribe, packet_ids, st.lists(subscriptions(version), min_size=1,
                                                     max_size=4),
                     properties(Where.SUBSCRIBE, version))


def subacks(version: int) -> st.SearchStrategy[Suback]:
    codes = sorted(VALID_SUBACK) if version == MQTT_5 else [0, 1, 2, 0x80]
    return st.builds(Suback, packet_ids, st.lists(st.sampled_from(codes), min_size=1, max_size=4),
                     properties(Where.SUBACK, version))


def unsubscribes(version: int) -> st.SearchStrategy[Unsubscribe]:
    return st.builds(Unsubscribe, packet_ids, st.lists(topic_filters(), min_size=1, max_size=4),
                     properties(Where.UNSUBSCRIBE, version))


def unsubacks(version: int) -> st.SearchStrategy[Unsuback]:
    if version != MQTT_5:  # 3.1.1 UNSUBACK carries no reason codes
        return st.builds(Unsuback, packet_ids)
    return st.builds(Unsuback, packet_ids,
                     st.lists(st.sampled_from(sorted(VALID_UNSUBACK)), min_size=1, max_size=4),
                     properties(Where.UNSUBACK))


def disconnects(version: int) -> st.SearchStrategy[Disconnect]:
    if version != MQTT_5:
        return st.just(Disconnect())
    return st.builds(Disconnect, st.sampled_from(sorted(VALID_DISCONNECT)),
                     properties(Where.DISCONNECT))


def auths() -> st.SearchStrategy[Auth]:
    return st.builds(Auth, st.sampled_from(sorted(VALID_AUTH)), properties(Where.AUTH))


def packet_strategies(version: int) -> dict[str, st.SearchStrategy[Packet]]:
    """One strategy per packet type that exists in `version` (AUTH is 5.0 only)."""
    out: dict[str, st.SearchStrategy[Packet]] = {
        "CONNECT": connects(version),
        "CONNACK": connacks(version),
        "PUBLISH": publishes(version),
        "PUBACK": _acks(PubAck, Where.PUBACK, VALID_PUBACK, version),
        "PUBREC": _acks(PubRec, Where.PUBREC, VALID_PUBACK, version),
        "PUBREL": _acks(PubRel, Where.PUBREL, VALID_PUBREL, version),
        "PUBCOMP": _acks(PubComp, Where.PUBCOMP, VALID_PUBREL, version),
        "SUBSCRIBE": subscribes(version),
        "SUBACK": subacks(version),
        "UNSUBSCRIBE": unsubscribes(version),
        "UNSUBACK": unsubacks(version),
        "PINGREQ": st.just(PingReq()),
        "PINGRESP": st.just(PingResp()),
        "DISCONNECT": disconnects(version),
    }
    if version == MQTT_5:
        out["AUTH"] = auths()
    return out


def after_connect(version: int) -> st.SearchStrategy[Packet]:
    """Any packet but CONNECT (which would change the decoder's version mid-stream)."""
    return st.one_of([s for name, s in packet_strategies(version).items() if name != "CONNECT"])
