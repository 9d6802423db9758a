"""The ACL example of docs/operations.md, as written, lets a smart light do its job and no more.

The light (device_fw/, MQTT 3.1.1; 5.0 here so that refusals show) connects with a will on its
status topic, consumes its own command
queue, and publishes its state, status, telemetry and Home Assistant entry (issue 19, item 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.mqtt.packets import MQTT_5, PubAck, Will
from tests.conftest import GatewayFactory
from tests.support.clients import RawClient
from tests.support.procs import GatewayProcess
from tests.test_docs_snippets import snippets


def documented_acl() -> str:
    (text,) = [t for where, _, t in snippets("acl") if where.startswith("docs/operations.md")]
    return text


@pytest.fixture
def gateway(tmp_path: Path, gateway_factory: GatewayFactory) -> GatewayProcess:
    acl = tmp_path / "acl"
    acl.write_text(documented_acl())
    return gateway_factory(config_text=f"""
[auth]
acl_file = "{acl}"

[[queues]]
filter = "lights/+/commands"
template = true
""")


@pytest.fixture
def light(gateway: GatewayProcess) -> Iterator[RawClient]:
    client = RawClient(gateway.port, MQTT_5)  # 5.0: a refusal shows in the reason codes
    connack = client.connect("light-1", clean_start=False,
                             will=Will("lights/light-1/status", b"offline", 1, True))
    assert connack.reason_code == 0
    yield client
    client.close()


def test_a_light_does_its_job_under_the_documented_acl(light: RawClient) -> None:
    assert light.subscribe("$q/lights/light-1/commands", qos=1).reason_codes == [1]
    for i, topic in enumerate(["lights/light-1/state", "lights/light-1/status",
                               "lights/light-1/telemetry", "homeassistant/light/light-1/config"]):
        ack = light.publish(topic, b"{}", qos=1, packet_id=i + 1)
        assert isinstance(ack, PubAck) and ack.reason_code < 0x80, (topic, ack)


def test_a_light_cannot_reach_another_lights_queue_or_topics(gateway: GatewayProcess,
                                                              light: RawClient) -> None:
    assert light.subscribe("$q/lights/light-2/commands", "lights/light-2/#",
                           qos=1).reason_codes == [0x87, 0x87]
    with RawClient(gateway.port, MQTT_5) as light2:
        light2.connect("light-2")
        ack = light2.publish("lights/light-1/state", b"{}", qos=1)
        assert isinstance(ack, PubAck) and ack.reason_code == 0x87
