"""encode → decode gives the packet back, in both versions, however the bytes are split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mqtt.codec import Decoder, encode
from gateway.mqtt.packets import MQTT_5, MQTT_311, Connect, Packet
from tests.mqtt.strategies import FAST, VERSIONS, after_connect, connects, packet_strategies

CASES = [(version, name) for version in VERSIONS for name in packet_strategies(version)]


def decoder_for(packet: Packet, version: int) -> Decoder:
    """A CONNECT teaches a fresh decoder its version; anything else needs it set."""
    return Decoder() if isinstance(packet, Connect) else Decoder(version=version)


def feed_bytewise(decoder: Decoder, data: bytes) -> list[Packet]:
    out: list[Packet] = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
    return out


def test_every_packet_type_is_covered() -> None:
    assert len(packet_strategies(MQTT_5)) == 15
    assert len(packet_strategies(MQTT_311)) == 14  # AUTH does not exist in 3.1.1


@pytest.mark.parametrize(("version", "name"), CASES, ids=[f"v{v}-{n}" for v, n in CASES])
@FAST
@given(data=st.data())
def test_round_trip(version: int, name: str, data: st.DataObject) -> None:
    packet = data.draw(packet_strategies(version)[name])
    wire = encode(packet, version)
    assert decoder_for(packet, version).feed(wire) == [packet]
    assert feed_bytewise(decoder_for(packet, version), wire) == [packet]


@pytest.mark.parametrize("version", VERSIONS)
@FAST
@given(data=st.data())
def test_connect_sets_the_decoder_version(version: int, data: st.DataObject) -> None:
    decoder = Decoder()
    decoder.feed(encode(data.draw(connects(version)), version))
    assert decoder.version == version


@pytest.mark.parametrize("version", VERSIONS)
@FAST
@given(data=st.data())
def test_a_stream_of_packets_decodes_to_the_same_list(version: int, data: st.DataObject) -> None:
    packets: list[Packet] = [data.draw(connects(version))]
    packets += data.draw(st.lists(after_connect(version), max_size=12))
    stream = b"".join(encode(p, version) for p in packets)
    assert Decoder().feed(stream) == packets
    assert feed_bytewise(Decoder(), stream) == packets


@pytest.mark.parametrize("version", VERSIONS)
@FAST
@given(data=st.data())
def test_a_stream_split_anywhere_decodes_the_same(version: int, data: st.DataObject) -> None:
    packets: list[Packet] = [data.draw(connects(version))]
    packets += data.draw(st.lists(after_connect(version), max_size=8))
    stream = b"".join(encode(p, version) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = Decoder()
    out: list[Packet] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += decoder.feed(stream[start:stop])
    assert out == packets
