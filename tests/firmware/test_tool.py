"""The deploy tool (`edgeq device ...`): one-line errors, the esptool/mpremote commands it runs
(printed with --dry-run, since no board is attached here), and `send` against a real broker."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.device import tool
from tests.firmware.harness import run_micropython
from tests.support.procs import MosquittoProcess, free_port

EXAMPLE = tool.FW_DIR / "config.example.json"


def _config(tmp_path: Path, **changes: Any) -> Path:
    cfg = json.loads(EXAMPLE.read_text())
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        (cfg[section] if section else cfg)[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("edgeq device: error: ")
    return err.strip()


def test_config_check_summarises_a_good_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == (
        f"{EXAMPLE}: ok: device light-123, Wi-Fi 'my-network', gateway 192.168.1.10:1883, "
        "LED pwm on pins [25, 26, 27]\n")


@pytest.mark.parametrize(("changes", "message"), [
    ({"gateway__port": "1883"}, "gateway.port: must be an integer"),
    ({"gateway__hots": "x"}, "gateway.hots: unknown key"),
    ({"device_id": "light/1"}, "device_id: use 1 to 64 letters"),
    ({"led__driver": "lamp"}, 'led.driver: must be "pwm" or "neopixel", not "lamp"'),
    ({"watchdog_ms": 100}, "watchdog_ms: must be from 5000 to 600000, not 100"),
    ({"gateway__password": "pässword"}, "gateway.password: must be plain ASCII"),
    ({"led__pins": [34, 26, 27]},
     "led.pins: GPIO34 is input-only on the ESP32 (it cannot drive an LED)"),
    ({"led__pins": [25, 7, 27]}, "led.pins: GPIO7 is wired to the flash chip on the ESP32"),
    ({"chip": "esp32c3"}, "led.pins: the ESP32-C3 has no GPIO25"),
    ({"chip": "esp32s3", "led__pins": [25, 26, 27]}, "led.pins: the ESP32-S3 has no GPIO25"),
    ({"chip": "esp8266"}, 'chip: must be "esp32", "esp32s3" or "esp32c3", not "esp8266"'),
    ({"led__driver": "neopixel", "led__pin": 36},
     "led.pin: GPIO36 is input-only on the ESP32 (it cannot drive an LED)"),
    ({"gateway__tls": True}, "gateway.ca_file: required with gateway.tls (or set "
     "gateway.insecure = true to skip checking the gateway's certificate)"),
    ({"gateway__insecure": True}, "gateway.insecure: set only with gateway.tls = true"),
    ({"gateway__tls": True, "gateway__insecure": True, "gateway__ca_file": "/ca.der"},
     "gateway.insecure: set either gateway.ca_file or gateway.insecure, not both"),
    ({"gateway__timeout_ms": 30000},
     "gateway.timeout_ms: must be below watchdog_ms (30000), so the light notices first"),
])
def test_config_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    changes: dict[str, Any], message: str) -> None:
    path = _config(tmp_path, **changes)
    assert tool.main(["config", str(path)]) == 1
    assert f"{path}: {message}" in _one_line_error(capsys)


def test_a_good_config_for_each_chip_passes(tmp_path: Path) -> None:
    for chip, pins in (("esp32", [25, 26, 27]), ("esp32s3", [4, 5, 6]), ("esp32c3", [3, 4, 5])):
        cfg = tool.check_config(_config(tmp_path, chip=chip, led__pins=pins))
        assert cfg["chip"] == chip
    tls = tool.check_config(_config(tmp_path, gateway__tls=True, gateway__insecure=True))
    assert tls["gateway"]["insecure"] is True


def test_a_config_without_a_device_id_is_one_template_for_many_boards(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = json.loads(EXAMPLE.read_text())
    del cfg["device_id"]
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(cfg))
    assert tool.main(["config", str(path)]) == 0
    assert "ok: device id from each board's MAC (light-xxxxxx), Wi-Fi" in capsys.readouterr().out


def test_deploy_builds_mpy_and_copies_them_in_maintenance_mode(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["deploy", "--port", "/dev/ttyUSB7", "--config", str(EXAMPLE),
                      "--dry-run"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    assert commands[0] == ("$ mpremote connect /dev/ttyUSB7 exec "
                           "'open('\"'\"'/nostart'\"'\"', '\"'\"'w'\"'\"').close()' + reset")
    copy = commands[2]
    for dest in (":/fw.new/boot.py", ":/fw.new/main.py", ":/fw.new/light/app.mpy",
                 ":/fw.new/lib/umqtt/simple.mpy", ":/fw.new/config.json"):
        assert dest in copy
    assert ":/fw.new/light/app.py" not in copy
    assert commands[3] == "$ mpremote connect /dev/ttyUSB7 exec '<swap script>'"
    assert commands[-1] == "$ mpremote connect /dev/ttyUSB7 rm :/nostart + reset"


def test_a_dry_run_prints_paths_that_exist_afterwards(capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["deploy", "--port", "/dev/ttyUSB7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    copied = re.findall(r"cp (\S+) :/fw\.new/(\S+)", out)
    assert len(copied) == len(tool.firmware_sources())
    for host, dest in copied:
        assert Path(host).is_file(), host
        assert host.endswith(dest)
    assert re.search(r"built \d+ files in (\S+) \(kept for --dry-run\)", out)


def test_prepare_leaves_an_empty_staging_tree_and_the_firmware_alone(tmp_path: Path) -> None:
    (tmp_path / "light").mkdir()
    (tmp_path / "light" / "app.py").write_text("# old\n")
    (tmp_path / "leftover.py").write_text("# from a copy that failed\n")
    code = tool.PREPARE_SCRIPT + (
        "import os\n"
        "print(sorted(os.listdir('/fw.new')), os.listdir('/fw.new/lib'), os.listdir('/light'))\n")
    proc = run_micropython(code, copies={"/light": tmp_path / "light", "/fw.new": tmp_path})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "['lib', 'light'] ['umqtt'] ['app.py']"


def test_the_swap_puts_the_new_firmware_in_place_in_one_step(tmp_path: Path) -> None:
    # The board already has firmware (and a stray module); /fw.new is a complete new copy.
    old, new = tmp_path / "old", tmp_path / "new"
    for root, text in ((old, "old"), (new, "new")):
        for rel in ("boot.py", "main.py", "config.json", "light/app.py", "lib/umqtt/simple.py"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(f"# {text}\n")
    (old / "light" / "stale.py").write_text("# gone after the swap\n")
    (old / "lib" / "other.py").write_text("# not the firmware's: stays\n")
    code = tool.SWAP_SCRIPT + (
        "import os\n"
        "lib = os.listdir('/lib')\n"
        "print(sorted(os.listdir('/light')), 'other.py' in lib, 'fw.new' in os.listdir('/'))\n"
        "print([open(p).read().strip() for p in ('/boot.py', '/main.py', '/config.json',"
        " '/light/app.py', '/lib/umqtt/simple.py')])\n")
    proc = run_micropython(code, copies={"/": old, "/fw.new": new})
    assert proc.returncode == 0, proc.stderr
    listing, contents = proc.stdout.splitlines()
    assert listing == "['app.py'] True False"
    assert contents == str(["# new"] * 5)


def test_flash_erases_then_writes_at_the_chips_offset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fw = tmp_path / "ESP32_GENERIC_S3-v1.27.0.bin"
    fw.write_bytes(_image_header(chip_id=9))
    assert tool.main(["flash", "--port", "/dev/ttyACM0", "--firmware", str(fw),
                      "--chip", "esp32s3", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("$ esptool --chip esp32s3 --port /dev/ttyACM0 --baud 460800 erase")
    assert out[1].endswith(f"-z 0x0 {fw}")


def _image_header(chip_id: int) -> bytes:
    """The first bytes of an ESP-IDF image, as MicroPython's .bin starts."""
    return bytes([0xE9, 3, 2, 0x20]) + b"\0" * 8 + chip_id.to_bytes(2, "little") + b"\0" * 18


@pytest.mark.parametrize(("content", "chip", "message"), [
    (b"PK\x03\x04 not firmware at all" * 4, "esp32",
     "not a MicroPython firmware image for the ESP32 family"),
    (b"", "esp32", "not a MicroPython firmware image"),
    (_image_header(chip_id=9), "esp32", "this image is for esp32s3, not esp32; use --chip esp32s3"),
    (_image_header(chip_id=77), "esp32c3", "this image is for chip id 77, not esp32c3"),
], ids=["zip-file", "empty", "s3-image-for-esp32", "unknown-chip"])
def test_flash_refuses_a_file_that_is_not_firmware_for_the_chip(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, chip: str,
        message: str) -> None:
    fw = tmp_path / "random.bin"
    fw.write_bytes(content)
    assert tool.main(["flash", "--port", "/dev/ttyUSB0", "--firmware", str(fw), "--chip", chip,
                      "--dry-run"]) == 1
    assert message in _one_line_error(capsys)


@pytest.mark.parametrize(("argv", "message"), [
    (["light-1", "set-color", "[1, 2"], "set-color: '[1, 2' is not a JSON list like [255, 128, 0]"),
    (["light/+", "power", "on"], "'light/+': not a device id"),
    (["#", "power", "on"], "'#': not a device id"),
    (["light-1", "power", "on", "--topic", "lights/+/{id}"],
     "--topic 'lights/+/{id}': a command goes to one topic, without wildcards"),
])
def test_send_refuses_bad_input_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                            message: str) -> None:
    assert tool.main(["send", *argv, "--port", str(free_port())]) == 1
    assert message in _one_line_error(capsys)


def test_without_a_port_the_tools_find_the_board_themselves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["deploy", "--dry-run"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    assert all(c.startswith("$ mpremote connect auto ") for c in commands if "mpremote" in c)
    fw = tmp_path / "ESP32_GENERIC-v1.27.0.bin"
    fw.write_bytes(_image_header(chip_id=0))
    assert tool.main(["flash", "--firmware", str(fw), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--port" not in out  # esptool scans the serial ports for the chip
    assert out.startswith("$ esptool --chip esp32 --baud 460800 erase")


def test_deploy_to_several_boards_one_after_the_other(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = json.loads(EXAMPLE.read_text())
    del fleet["device_id"]  # each board takes its id from its MAC
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet))
    assert tool.main(["deploy", "--port", "/dev/ttyUSB0", "--port", "/dev/ttyUSB1",
                      "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for port in ("/dev/ttyUSB0", "/dev/ttyUSB1"):
        assert f"$ mpremote connect {port} rm :/nostart + reset" in out
    assert out.count("built ") == 1  # one build, copied to every board

    assert tool.main(["deploy", "--port", "/dev/ttyUSB0", "--port", "/dev/ttyUSB1",
                      "--config", str(EXAMPLE), "--dry-run"]) == 1
    assert ("device_id light-123 would be on 2 boards; remove device_id from the config so "
            "each board takes its own from its MAC") in _one_line_error(capsys)


def test_flash_without_a_firmware_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["flash", "--port", "/dev/ttyUSB0", "--firmware", "nope.bin"]) == 1
    assert "nope.bin: no such firmware file" in _one_line_error(capsys)


def test_send_checks_the_command_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens: the error must come from the check, not the network
    assert tool.main(["send", "light-1", "set-color", "chartreuse-ish", "--port", str(port)]) == 1
    assert "set-color: unknown colour" in _one_line_error(capsys)
    assert tool.main(["send", "light-1", "set-brightness", "bright", "--port", str(port)]) == 1
    assert "is not a number" in _one_line_error(capsys)


def test_send_to_a_dead_gateway_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert tool.main(["send", "light-1", "power", "on", "--port", str(port)]) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in _one_line_error(capsys)


def test_send_publishes_json_with_the_command_type_user_property(
        mosquitto: MosquittoProcess) -> None:
    got: list[mqtt.MQTTMessage] = []
    ready, arrived = threading.Event(), threading.Event()

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe("lights/+/commands", qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(msg)
        arrived.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_connect = on_connect
    sub.on_subscribe = lambda *_: ready.set()
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        assert ready.wait(5)
        assert tool.main(["send", "light-9", "set-color", "#00FF00", "--id", "c-1",
                          "--port", str(mosquitto.port)]) == 0
        assert arrived.wait(5)
    finally:
        sub.disconnect()
        sub.loop_stop()
    msg = got[0]
    assert msg.topic == "lights/light-9/commands"
    assert msg.qos == 1
    assert json.loads(msg.payload) == {"command_type": "set-color", "color": "#00FF00",
                                       "id": "c-1"}
    assert msg.properties is not None
    assert getattr(msg.properties, "UserProperty", None) == [("command_type", "set-color")]


def test_send_gives_a_command_an_id_when_none_is_given() -> None:
    first = json.loads(tool.command_payload("power", "toggle", None))
    second = json.loads(tool.command_payload("power", "toggle", None))
    assert first["id"] != second["id"]
    assert len(first["id"]) >= 8


def test_update_publishes_a_bundle_whose_hash_covers_every_file(
        mosquitto: MosquittoProcess) -> None:
    got: list[mqtt.MQTTMessage] = []
    ready, arrived = threading.Event(), threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    sub.on_connect = lambda client, *_: client.subscribe("lights/+/update", qos=1)
    sub.on_subscribe = lambda *_: ready.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(msg)
        arrived.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        assert ready.wait(5)
        assert tool.main(["update", "light-9", "--port", str(mosquitto.port)]) == 0
        assert arrived.wait(5)
    finally:
        sub.disconnect()
        sub.loop_stop()
    head, _, body = bytes(got[0].payload).partition(b"\n")
    manifest = json.loads(head)
    assert got[0].topic == "lights/light-9/update" and got[0].qos == 1
    assert manifest["version"] == "0.2.0"
    names = [name for name, _size in manifest["files"]]
    assert "light/app.mpy" in names and "light/__init__.mpy" in names
    assert sum(size for _name, size in manifest["files"]) == len(body)
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
