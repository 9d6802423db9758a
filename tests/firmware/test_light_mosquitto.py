"""The light firmware in the real MicroPython interpreter against Debian's mosquitto.

Mosquitto has no queues, so these scenarios use the plain command topic
(topics.commands = "lights/{id}/commands") and exercise what any MQTT 3.1.1 broker offers:
the persistent session, the last will, retained state, reconnection and bad input.
The last-value queue scenarios run against edgeq in test_light_gateway.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.firmware.conftest import DeviceFactory
from tests.firmware.harness import (
    BLUE,
    DEVICE_ID,
    GREEN,
    RED,
    WHITE,
    device_config,
    observing,
    send,
    send_raw,
    state_is,
)
from tests.support.procs import MosquittoProcess, free_port

PLAIN_TOPICS = {"commands": "lights/{id}/commands"}
STATE = f"lights/{DEVICE_ID}/state"
STATUS = f"lights/{DEVICE_ID}/status"
APPLIED = r"command applied on lights/light-1/commands"
ONLINE = r"mqtt: subscribed to lights/light-1/commands; online"


def test_boot_reports_online_and_state_then_will_says_offline(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(mosquitto.port, topics=PLAIN_TOPICS)).start()
    with observing(mosquitto.port, [f"lights/{DEVICE_ID}/#"]) as obs:
        obs.wait_for(STATE)
    with observing(mosquitto.port, [f"lights/{DEVICE_ID}/#"]) as obs:  # a late subscriber
        assert obs.wait_for(STATUS, lambda m: m.retain).payload == b"online"
        state = obs.wait_for(STATE, lambda m: m.retain).json()
        assert state == {"power": "on", "color": "#ffffff", "brightness": 100,
                         "last_command_id": None, "last_error": None}
        assert dev.hw.colors() == [(0, 0, 0), WHITE]  # PWM set up dark, then the boot colour

        dev.kill()  # power cut: no DISCONNECT, so mosquitto publishes the will
        obs.wait_for(STATUS, lambda m: m.payload == b"offline")
    assert "umqtt from /lib/umqtt/simple.py" in dev.console


def test_commands_drive_the_led_and_the_retained_state(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(mosquitto.port, topics=PLAIN_TOPICS)).start()
    with observing(mosquitto.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(mosquitto.port, "set-color", "green", command_id="c-1")
        obs.wait_for(STATE, state_is(color="#00ff00", last_command_id="c-1"))
        assert dev.hw.colors()[-1] == GREEN

        send(mosquitto.port, "set-brightness", "50")
        send(mosquitto.port, "set-color", "[255, 0, 0]")
        obs.wait_for(STATE, state_is(color="#ff0000", brightness=50))
        assert dev.hw.colors()[-1] == (128, 0, 0)

        send(mosquitto.port, "power", "off")
        obs.wait_for(STATE, state_is(power="off"))
        assert dev.hw.colors()[-1] == (0, 0, 0)
        mark = obs.mark()
        send(mosquitto.port, "power", "toggle")
        obs.wait_for(STATE, state_is(power="on", color="#ff0000", brightness=50), since=mark)
        assert dev.hw.colors()[-1] == (128, 0, 0)


def test_commands_sent_while_offline_arrive_through_the_persistent_session(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    # First boot makes the session; max_loops ends it cleanly (DISCONNECT, "offline").
    cfg = device_config(mosquitto.port, topics=PLAIN_TOPICS, max_loops=15)
    dev = device_factory(cfg).start()
    assert dev.wait_exit() == 0
    assert "stopped after 15 loops" in dev.console

    with observing(mosquitto.port, [f"lights/{DEVICE_ID}/#"]) as obs:
        assert obs.wait_for(STATUS).payload == b"offline"  # said by the light itself
        for colour in ("blue", "red", "green"):
            send(mosquitto.port, "set-color", colour)

        dev.config["max_loops"] = 0
        dev.start()
        dev.wait_for("session present: 1")
        obs.wait_for(STATE, state_is(color="#00ff00"))
    # A plain broker queues every command: all three are applied, in order. The last-value
    # queue of edgeq delivers only Green (test_light_gateway.py).
    assert dev.hw.colors()[-3:] == [BLUE, RED, GREEN]


def test_malformed_commands_are_acknowledged_and_do_not_stop_the_light(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(mosquitto.port, topics=PLAIN_TOPICS)).start()
    bad = ["not json", "[1, 2, 3]", '{"color": "red"}', '{"command_type": "explode"}',
           '{"command_type": "set-color", "color": "chartreuse-ish"}',
           '{"command_type": "set-brightness", "brightness": 250}',
           '{"command_type": "power", "power": true}', "\xff\xfe{", "x" * 2000]
    with observing(mosquitto.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        for payload in bad:
            send_raw(mosquitto.port, payload)
        send(mosquitto.port, "set-color", "blue", command_id="after-the-bad-ones")
        obs.wait_for(STATE, state_is(color="#0000ff", last_command_id="after-the-bad-ones",
                                     last_error=None))
        dev.wait_for(APPLIED + ": set-color #0000ff")  # the console has caught up
        assert dev.count("command rejected") == len(bad)
        assert 'unknown command_type "explode"' in dev.console
    assert dev.hw.colors()[-1] == BLUE

    # Acknowledged means gone: after a power cut and a reboot, none of them comes back.
    dev.kill()
    dev.start()
    dev.wait_for(ONLINE, count=2)
    with observing(mosquitto.port, [STATE]) as obs:
        send(mosquitto.port, "power", "off", command_id="sentinel")
        obs.wait_for(STATE, state_is(last_command_id="sentinel"))
    dev.wait_for(APPLIED + ": power off")
    assert dev.count("command rejected") == len(bad)


def test_a_broker_restart_is_survived_by_reconnecting(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(mosquitto.port, topics=PLAIN_TOPICS)).start()
    with observing(mosquitto.port, [STATE]) as obs:
        obs.wait_for(STATE)  # the light is idle now, reading
    mosquitto.stop()
    dev.wait_for(r"link down: .*retrying in \d+ ms", count=2)  # refused while it is away
    mosquitto.start()  # same port; this mosquitto forgets sessions, so the light resubscribes
    dev.wait_for(ONLINE, count=2)
    with observing(mosquitto.port, [STATE]) as obs:
        send(mosquitto.port, "set-color", "green")
        obs.wait_for(STATE, state_is(color="#00ff00"))
    assert dev.hw.colors()[-1] == GREEN
    assert "link down: connection closed by the gateway" in dev.console


def test_wifi_loss_is_survived_by_rejoining(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    dev = device_factory(device_config(mosquitto.port, topics=PLAIN_TOPICS)).start()
    dev.wait_for(ONLINE)
    dev.set_wifi(up=False)
    dev.wait_for("wifi: link lost")
    dev.wait_for(r"link down: .*wifi: no ap found", count=2)
    dev.set_wifi(up=True)
    dev.wait_for(ONLINE, count=2)
    with observing(mosquitto.port, [STATE]) as obs:
        send(mosquitto.port, "set-color", "red")
        obs.wait_for(STATE, state_is(color="#ff0000"))
    assert [e["state"] for e in dev.hw.events("wifi")] == ["connected", "disconnected",
                                                           "connected"]


def test_reconnect_delays_back_off_exponentially_and_the_watchdog_is_fed(
        device_factory: DeviceFactory) -> None:
    nobody = free_port()  # no broker there: every attempt is refused
    cfg = device_config(nobody, reconnect_min_ms=50, reconnect_max_ms=400, max_loops=7)
    dev = device_factory(cfg).start()
    assert dev.wait_exit(timeout=20) == 0
    delays = [int(d) for d in re.findall(r"retrying in (\d+) ms", dev.console)]
    assert len(delays) == 7
    for attempt, delay in enumerate(delays):
        ceiling = min(400, 50 << attempt)
        assert ceiling - ceiling // 2 <= delay <= ceiling, (attempt, delays)
    assert "ECONNREFUSED" in dev.console or "111" in dev.console
    assert dev.hw.events("wdt") == [{"ev": "wdt", "timeout": 5000}]


def test_neopixel_driver(mosquitto: MosquittoProcess, device_factory: DeviceFactory) -> None:
    led = {"driver": "neopixel", "pin": 5, "count": 3}
    dev = device_factory(device_config(mosquitto.port, topics=PLAIN_TOPICS, led=led)).start()
    with observing(mosquitto.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(mosquitto.port, "set-color", "#ff8000")
        obs.wait_for(STATE, state_is(color="#ff8000"))
    writes = dev.hw.events("bitstream")
    assert writes[-1]["pin"] == 5
    assert writes[-1]["data"] == "80ff00" * 3  # green, red, blue on the wire, per pixel
    assert dev.hw.pixels() == [WHITE, (255, 128, 0)]


def test_the_precompiled_firmware_runs_too(
        mosquitto: MosquittoProcess, device_factory: DeviceFactory, compiled_tree: Path) -> None:
    cfg = device_config(mosquitto.port, topics=PLAIN_TOPICS)
    dev = device_factory(cfg, tree=compiled_tree).start()
    with observing(mosquitto.port, [STATE]) as obs:
        dev.wait_for(ONLINE)
        send(mosquitto.port, "set-color", "green")
        obs.wait_for(STATE, state_is(color="#00ff00"))
    assert "umqtt from /lib/umqtt/simple.mpy" in dev.console
    assert sorted(p.name for p in (compiled_tree / "light").iterdir()) == [
        "__init__.mpy", "app.mpy", "backoff.mpy", "commands.mpy", "config.mpy", "discovery.mpy",
        "hw.mpy", "log.mpy", "mqtt.mpy", "store.mpy", "telemetry.mpy", "update.mpy", "wifi.mpy"]
