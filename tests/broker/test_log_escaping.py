"""Client-supplied text reaches the log escaped: no forged lines, no terminal escapes."""

from __future__ import annotations

from gateway.mqtt.packets import MQTT_5
from tests.support.clients import connected
from tests.support.procs import GatewayProcess

HOSTILE_ID = "evil\n2026-01-01 00:00:00 INFO gateway: forged\x1b[31m"
ESCAPED_ID = "evil\\n2026-01-01 00:00:00 INFO gateway: forged\\x1b[31m"


def test_a_client_id_with_control_characters_is_logged_escaped(gateway: GatewayProcess) -> None:
    # the second connection takes the session over, which is logged with the client id
    with connected(gateway.port, HOSTILE_ID, MQTT_5) as first, \
            connected(gateway.port, HOSTILE_ID, MQTT_5):
        first.read_until_closed()
    log = gateway.log()
    assert f"session {ESCAPED_ID} taken over" in log
    assert f"client_id={ESCAPED_ID}" in log
    assert "\x1b" not in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
