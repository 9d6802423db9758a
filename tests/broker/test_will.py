"""Will messages: published on an abnormal disconnect only, after the 5.0 will delay (which a
reconnect in time cancels), at once on DISCONNECT with reason 0x04."""

from __future__ import annotations

import time

import pytest

from gateway.mqtt.packets import MQTT_5, MQTT_311, Will
from tests.support.clients import V311, PahoClient, RawClient, connected
from tests.support.procs import GatewayProcess


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_will_is_published_when_the_connection_drops(broker: GatewayProcess, tag: str,
                                                     version: int) -> None:
    with connected(broker.port, f"{tag}-w", version) as watcher:
        watcher.subscribe(f"{tag}/will", qos=1)
        dying = connected(broker.port, f"{tag}-d", version,
                          will=Will(f"{tag}/will", b"gone", 1))
        dying.close()
        got = watcher.receive()
        assert (got.topic, got.payload, got.qos) == (f"{tag}/will", b"gone", 1)


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_no_will_after_a_clean_disconnect(broker: GatewayProcess, tag: str,
                                          version: int) -> None:
    with connected(broker.port, f"{tag}-w", version) as watcher:
        watcher.subscribe(f"{tag}/will")
        dying = connected(broker.port, f"{tag}-d", version, will=Will(f"{tag}/will", b"gone"))
        dying.disconnect()
        watcher.expect_silence(0.5)


def test_paho_will_on_drop_but_not_on_disconnect(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        polite = PahoClient(broker.port, f"{tag}-polite", V311)
        polite.client.will_set(f"{tag}/will", b"polite", 0)
        polite.connect()
        polite.disconnect()
        rude = PahoClient(broker.port, f"{tag}-rude", V311)
        rude.client.will_set(f"{tag}/will", b"rude", 0)
        rude.connect()
        rude.drop()
        assert watcher.receive().payload == b"rude"
        watcher.expect_silence()


def test_retained_will_with_properties(broker: GatewayProcess, tag: str) -> None:
    will = Will(f"{tag}/will", b"{}", 1, True,
                {"content_type": "application/json", "user_property": [("k", "v")]})
    connected(broker.port, f"{tag}-d", will=will).close()
    with connected(broker.port, f"{tag}-w") as late:
        late.subscribe(f"{tag}/will", qos=1)
        got = late.receive()
        assert (got.payload, got.retain) == (b"{}", True)
        assert got.properties["content_type"] == "application/json"
        assert got.properties["user_property"] == [("k", "v")]


def test_disconnect_with_will_message_reason_publishes_the_will(broker: GatewayProcess,
                                                                tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        leaving = connected(broker.port, f"{tag}-d", will=Will(f"{tag}/will", b"bye"))
        leaving.disconnect(0x04)
        assert watcher.receive().payload == b"bye"


def test_will_delay_holds_the_will_back(broker: GatewayProcess, tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        dying = connected(broker.port, f"{tag}-d", properties={"session_expiry_interval": 30},
                          will=Will(f"{tag}/will", b"late", 0, False,
                                    {"will_delay_interval": 2}))
        dying.close()
        dropped = time.monotonic()
        watcher.expect_silence(1.2)
        assert watcher.receive(4.0).payload == b"late"
        assert time.monotonic() - dropped >= 1.9
    with RawClient(broker.port) as cleanup:
        cleanup.connect(f"{tag}-d")  # clean start ends the 30 s session


def test_reconnect_within_will_delay_cancels_the_will(broker: GatewayProcess,
                                                      tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        will = Will(f"{tag}/will", b"late", 0, False, {"will_delay_interval": 1})
        connected(broker.port, f"{tag}-d", properties={"session_expiry_interval": 30},
                  will=will).close()
        back = connected(broker.port, f"{tag}-d", clean_start=False,
                         properties={"session_expiry_interval": 30})
        watcher.expect_silence(2.1)  # past the delay and the broker's 1 s tick
        back.disconnect(properties={"session_expiry_interval": 0})
        watcher.expect_silence(0.2)


def test_will_is_published_when_the_session_ends_before_the_delay(broker: GatewayProcess,
                                                                  tag: str) -> None:
    """Will delay 60 s but session expiry 1 s: the will goes when the session ends."""
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        connected(broker.port, f"{tag}-d", properties={"session_expiry_interval": 1},
                  will=Will(f"{tag}/will", b"ended", 0, False,
                            {"will_delay_interval": 60})).close()
        assert watcher.receive(3.5).payload == b"ended"


def test_clean_start_reconnect_ends_the_session_and_sends_the_delayed_will(
        broker: GatewayProcess, tag: str) -> None:
    """A reconnect with clean start does not continue the session, so it cannot cancel the
    will: the old session ends and its will goes at once [MQTT-3.1.3-9 is about resuming]."""
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        connected(broker.port, f"{tag}-d", properties={"session_expiry_interval": 60},
                  will=Will(f"{tag}/will", b"ended", 0, False,
                            {"will_delay_interval": 30})).close()
        with connected(broker.port, f"{tag}-d", clean_start=True):
            assert watcher.receive(1.0).payload == b"ended"


def test_takeover_publishes_the_will_of_the_first_connection(broker: GatewayProcess,
                                                             tag: str) -> None:
    with connected(broker.port, f"{tag}-w") as watcher:
        watcher.subscribe(f"{tag}/will")
        first = connected(broker.port, tag, will=Will(f"{tag}/will", b"taken over"))
        with connected(broker.port, tag):
            first.expect_disconnect(0x8E)
            assert watcher.receive().payload == b"taken over"
