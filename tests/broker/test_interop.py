"""Other real clients against the broker: aiomqtt (asyncio, 3.1.1 and 5.0) and Debian's
mosquitto_pub / mosquitto_sub command-line tools."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from tests.support.clients import TIMEOUT, MosquittoSub, connected, mosquitto_pub, paho_client
from tests.support.procs import GatewayProcess

VERSIONS = {"3.1.1": aiomqtt.ProtocolVersion.V311, "5.0": aiomqtt.ProtocolVersion.V5}


@pytest.mark.parametrize("version", list(VERSIONS.values()), ids=list(VERSIONS))
def test_aiomqtt_publish_and_subscribe_at_every_qos(broker: GatewayProcess, tag: str,
                                                    version: aiomqtt.ProtocolVersion) -> None:
    async def scenario() -> list[tuple[str, bytes, int]]:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"{tag}-s",
                                  protocol=version) as sub, \
                aiomqtt.Client("127.0.0.1", broker.port, identifier=f"{tag}-p",
                               protocol=version) as pub:
            await sub.subscribe(f"{tag}/#", qos=2)
            for qos in (0, 1, 2):
                await pub.publish(f"{tag}/q{qos}", f"qos {qos}".encode(), qos=qos)
            got: list[tuple[str, bytes, int]] = []
            async with asyncio.timeout(TIMEOUT):
                async for message in sub.messages:
                    assert isinstance(message.payload, bytes)
                    got.append((str(message.topic), message.payload, message.qos))
                    if len(got) == 3:
                        break
            return got

    got = asyncio.run(scenario())
    assert sorted(got) == [(f"{tag}/q{q}", f"qos {q}".encode(), q) for q in (0, 1, 2)]


def test_aiomqtt_v5_properties_and_retained(broker: GatewayProcess, tag: str) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    async def scenario() -> aiomqtt.Message:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("source", "aiomqtt")]
        props.ContentType = "text/plain"
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"{tag}-p",
                                  protocol=aiomqtt.ProtocolVersion.V5) as pub:
            await pub.publish(f"{tag}/r", b"retained", qos=1, retain=True, properties=props)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"{tag}-s",
                                  protocol=aiomqtt.ProtocolVersion.V5) as sub:
            await sub.subscribe(f"{tag}/r", qos=1)
            async with asyncio.timeout(TIMEOUT):
                return await anext(aiter(sub.messages))

    message = asyncio.run(scenario())
    assert message.payload == b"retained" and message.retain
    assert message.properties is not None
    assert message.properties.UserProperty == [("source", "aiomqtt")]  # type: ignore[attr-defined]
    assert message.properties.ContentType == "text/plain"  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_sub_receives_from_mosquitto_pub(broker: GatewayProcess, tag: str,
                                                   version: str) -> None:
    sub = MosquittoSub(broker.port, ["-V", version, "-q", "1", "-v", "-C", "2",
                                     "-t", f"{tag}/#"])
    try:
        sub.wait_for("received SUBACK")
        mosquitto_pub(broker.port, "-V", version, "-q", "1", "-t", f"{tag}/a", "-m", "hi")
        mosquitto_pub(broker.port, "-V", version, "-q", "2", "-t", f"{tag}/b/c", "-m", "there")
        assert sub.wait_for(f"{tag}/a ") == f"{tag}/a hi"
        assert sub.wait_for(f"{tag}/b/c ") == f"{tag}/b/c there"
        assert sub.finish() == 0
    finally:
        sub.stop()


def test_mosquitto_pub_retained_and_mosquitto_sub_gets_it(broker: GatewayProcess,
                                                          tag: str) -> None:
    mosquitto_pub(broker.port, "-r", "-q", "1", "-t", f"{tag}/state", "-m", "on")
    sub = MosquittoSub(broker.port, ["-v", "-C", "1", "-t", f"{tag}/state"])
    try:
        assert sub.wait_for(f"{tag}/state ") == f"{tag}/state on"
        assert sub.finish() == 0
    finally:
        sub.stop()
    mosquitto_pub(broker.port, "-r", "-n", "-t", f"{tag}/state")  # -n: empty payload clears
    with connected(broker.port, f"{tag}-check") as check:
        check.subscribe(f"{tag}/state")
        check.expect_silence()


def test_mosquitto_sub_sees_paho_and_paho_sees_mosquitto_pub(broker: GatewayProcess,
                                                             tag: str) -> None:
    with paho_client(broker.port, f"{tag}-paho") as paho:
        paho.subscribe(f"{tag}/from-cli", 1)
        sub = MosquittoSub(broker.port, ["-v", "-C", "1", "-t", f"{tag}/from-paho"])
        try:
            sub.wait_for("received SUBACK")
            paho.publish(f"{tag}/from-paho", "hello cli", 1)
            assert sub.wait_for(f"{tag}/from-paho ") == f"{tag}/from-paho hello cli"
        finally:
            sub.stop()
        mosquitto_pub(broker.port, "-q", "1", "-t", f"{tag}/from-cli", "-m", "hello paho")
        assert paho.get().payload == b"hello paho"
