"""Session expiry is enforced: 5.0 expiry up to `mqtt.max_session_expiry`, 3.1.1 persistent
sessions after `mqtt.persistent_session_expiry`; an expired session leaves no row behind."""

from __future__ import annotations

import sqlite3
import time

from gateway.mqtt.packets import MQTT_5, MQTT_311
from tests.conftest import GatewayFactory
from tests.queues.e2e import Admin, wait_until
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess

SHORT = """
[mqtt]
max_session_expiry = 1
persistent_session_expiry = 1
"""


def stored_rows(gw: GatewayProcess, client_id: str) -> int:
    """Rows of `client_id` in the three session tables of the store file."""
    with sqlite3.connect(gw.data_dir / "edgeq.db") as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE client_id = ?",
                                (client_id,)).fetchone()[0]
                   for table in ("sessions", "session_subscriptions", "session_messages"))


def owe_one_message(gw: GatewayProcess, client_id: str, version: int, **connect: object) -> None:
    with RawClient(gw.port, version) as client:
        client.connect(client_id, clean_start=False, **connect)  # type: ignore[arg-type]
        client.subscribe(f"{client_id}/t", qos=1)
        client.disconnect()
    with connected(gw.port, f"{client_id}-pub") as pub:
        pub.publish(f"{client_id}/t", b"owed", 1)


def test_a_311_persistent_session_expires_and_frees_its_rows(gateway_factory: GatewayFactory,
                                                             tag: str) -> None:
    gw = gateway_factory(SHORT)
    owe_one_message(gw, tag, MQTT_311)
    assert stored_rows(gw, tag) == 3
    wait_until(lambda: "clients_expired_total 1.0" in Admin(gw).metrics(), 5.0, "the expiry count")
    wait_until(lambda: stored_rows(gw, tag) == 0, 5.0, "the expired session's rows to go")
    with RawClient(gw.port, MQTT_311) as back:
        assert back.connect(tag, clean_start=False).session_present is False


def test_a_v5_session_expiry_is_capped_and_enforced(gateway_factory: GatewayFactory,
                                                    tag: str) -> None:
    gw = gateway_factory(SHORT)
    with RawClient(gw.port, MQTT_5) as client:
        connack = client.connect(tag, clean_start=False,
                                 properties={"session_expiry_interval": 0xFFFFFFFF})
        assert connack.properties["session_expiry_interval"] == 1
        client.disconnect()
    owe_one_message(gw, tag, MQTT_5, properties={"session_expiry_interval": 0xFFFFFFFF})
    assert stored_rows(gw, tag) == 3
    wait_until(lambda: stored_rows(gw, tag) == 0, 5.0, "the expired session's rows to go")


def test_a_session_that_expired_while_the_gateway_was_down_is_deleted_at_start(
        gateway_factory: GatewayFactory, tag: str) -> None:
    gw = gateway_factory("[mqtt]\npersistent_session_expiry = 2\n")
    owe_one_message(gw, tag, MQTT_311)
    gw.stop()
    time.sleep(2.1)  # the session's expiry passes while nothing runs
    gw.start()
    wait_until(lambda: stored_rows(gw, tag) == 0, 5.0, "the expired session's rows to go")


def test_sessions_stored_to_live_forever_get_todays_cap_at_start(
        gateway_factory: GatewayFactory, tag: str) -> None:
    """A 3.1.1 session kept forever (as before persistent_session_expiry existed) expires
    under the caps in force when the gateway starts again (the larger of the two: the store
    does not say which protocol a session spoke)."""
    gw = gateway_factory("[mqtt]\npersistent_session_expiry = 0\n")
    owe_one_message(gw, tag, MQTT_311)
    gw.stop()
    gw.config_text = SHORT
    gw.start()
    wait_until(lambda: stored_rows(gw, tag) == 0, 5.0, "the expired session's rows to go")
