"""Limits on what clients create (issue 15): the number of queues and of template instances,
refused with reason codes, logged and counted; empty instances whose consumers are gone expire."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.mqtt.packets import MQTT_5, MQTT_311
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, publish, wait_until
from tests.support.clients import connected

LIMITED = """
[storage]
max_queues = 3
max_instances = 2
instance_expiry = 1

[[queues]]
filter = "jobs/#"
name = "jobs"

[[queues]]
filter = "dev/+/cmd"
template = true
"""


def metric(admin: Admin, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", admin.metrics(), re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_template_instances_are_capped_and_idle_ones_expire(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(LIMITED)
    admin = Admin(gw)
    assert publish(gw.port, "dev/a/cmd", "for a", version=MQTT_5) == [0]
    assert publish(gw.port, "dev/b/cmd", "for b", version=MQTT_5) == [0]
    assert publish(gw.port, "dev/c/cmd", "for c", version=MQTT_5) == [0x97]
    assert publish(gw.port, "dev/c/cmd", "for c", version=MQTT_311) == [0]  # not stored
    with connected(gw.port, "dev-d", MQTT_5) as d5, connected(gw.port, "dev-e", MQTT_311) as e3:
        assert d5.subscribe("$q/dev/d/cmd", qos=1).reason_codes == [0x97]
        assert e3.subscribe("$q/dev/e/cmd", qos=1).reason_codes == [0x80]
    assert admin.request("GET", "/api/v1/queues/dev%2Fc%2Fcmd").status == 404
    assert "template instance limit reached" in gw.log()
    assert metric(admin, 'edgeq_queue_limit_refusals_total{limit="max_instances"}') == 4
    assert metric(admin, "edgeq_queue_instances") == 2

    gw.stop()  # the count survives a restart
    gw.start()
    admin = Admin(gw)
    with connected(gw.port, "a", MQTT_311) as a:  # drain dev/a; it expires once left alone
        a.subscribe("$q/dev/a/cmd", qos=1)
        assert a.receive().payload == b"for a"
        a.expect_silence(1.5)  # a consumer keeps its empty instance
        assert admin.request("GET", "/api/v1/queues/dev%2Fa%2Fcmd").status == 200
    wait_until(lambda: admin.request("GET", "/api/v1/queues/dev%2Fa%2Fcmd").status == 404,
               4, "the idle instance to expire")
    assert admin.stats("dev/b/cmd")["depth"] == 1  # one holding a message stays
    assert publish(gw.port, "dev/c/cmd", "for c", version=MQTT_5) == [0]  # room again
    assert metric(admin, "edgeq_queue_instances_expired_total") >= 1


def test_the_number_of_queues_is_capped(gateway_factory: GatewayFactory,
                                        tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\nqueue consume #\nqueue create #\n")  # anonymous
    gw = gateway_factory(f'[auth]\nacl_file = "{acl}"\n' + LIMITED)
    admin = Admin(gw)
    assert admin.request("POST", "/api/v1/queues", b'{"filter": "a/#", "name": "a"}').status \
        == 201
    refused = admin.request("POST", "/api/v1/queues", b'{"filter": "b/#", "name": "b"}')
    assert refused.status == 400 and "queue limit reached" in refused.json()["error"]
    with connected(gw.port, "maker", MQTT_5) as maker:
        assert maker.subscribe("$queue/c/c/#", qos=1).reason_codes == [0x97]
    assert "queue limit reached" in gw.log()
    assert metric(admin, 'edgeq_queue_limit_refusals_total{limit="max_queues"}') == 2
    assert metric(admin, "edgeq_queues") == 3
