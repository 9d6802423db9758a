"""The `edgeq` command line: a thin layer over the library (serve, queue, passwd, top, ...).

Every failure the user can fix ends in one readable line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway import config as config_mod
from gateway.admin.client import AdminClient, AdminError
from gateway.config import ConfigError, QueueSpec

QUEUE_OPTIONS = {name: field for name, field in QueueSpec.__annotations__.items()
                 if name != "filter"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeq", description="MQTT broker with durable message queues for edge gateways.")
    parser.add_argument("--version", action="version", version=f"edgeq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", metavar="FILE", help="TOML config (default: embedded)")
    serve.add_argument("--listen", metavar="ADDR", action="append",
                       help="HOST:PORT, tls://HOST:PORT or ws://HOST:PORT[/path]; repeatable; "
                            "replaces the config file's listeners")
    serve.add_argument("--data-dir", metavar="DIR", help="where the SQLite store lives")
    serve.add_argument("--admin", metavar="HOST:PORT", help="admin API address")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    admin = argparse.ArgumentParser(add_help=False)
    _admin_flags(admin)
    queue = commands.add_parser("queue", help="list, show, create, purge or delete queues")
    actions = queue.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every queue with depth and lag", parents=[admin])
    for name, text in (("show", "one queue in detail"), ("purge", "drop every ready message"),
                       ("delete", "remove a queue and its messages")):
        actions.add_parser(name, help=text, parents=[admin]).add_argument("name")
    create = actions.add_parser("create", help="declare a queue at run time", parents=[admin])
    create.add_argument("filter")
    for option in QUEUE_OPTIONS:
        create.add_argument(f"--{option.replace('_', '-')}", dest=option, metavar="VALUE")

    commands.add_parser("passwd", help="manage the password file (like mosquitto_passwd)",
                        add_help=False)
    top = commands.add_parser("top", help="live terminal view of queues and clients")
    _admin_flags(top)
    demo = commands.add_parser("demo", help="play the three queue patterns against a gateway")
    _admin_flags(demo)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=1883)
    commands.add_parser("device", help="ESP32 firmware: flash, deploy, config, send",
                        add_help=False)
    return parser


def _admin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="admin API URL (default: from DATA_DIR/admin.json)")
    parser.add_argument("--token", help="admin API token")
    parser.add_argument("--data-dir", default="var", help="the gateway's data directory")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["passwd"]:
        from gateway.auth.passwd import passwd_main

        return passwd_main(args_list[1:])
    if args_list[:1] == ["device"]:
        return _device(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        return _run(args)
    except (ConfigError, AdminError) as e:
        print(f"edgeq: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "queue":
        return _queue(args)
    if args.command == "top":
        from tui.app import run_top

        return run_top(AdminClient.discover(args.url, args.token, args.data_dir))
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo(args.host, args.port)
    raise AssertionError(args.command)


def _serve(args: argparse.Namespace) -> int:
    from gateway.appliance.systemd import setup_logging
    from gateway.serve import serve

    config = config_mod.load(args.config)
    overrides: dict[str, object] = {"listen": args.listen, "data_dir": args.data_dir,
                                    "admin": args.admin}
    config = config_mod.with_overrides(config, **overrides)  # type: ignore[arg-type]
    setup_logging((args.log_level or config.log_level).upper())
    logging.getLogger("gateway").info("config: %s", config.source)
    return serve(config, args.config, overrides)


def _queue(args: argparse.Namespace) -> int:
    client = AdminClient.discover(args.url, args.token, args.data_dir)
    if args.action == "list":
        _print_table(client.queues())
    elif args.action == "show":
        print(json.dumps(client.queue(args.name), indent=2))
    elif args.action == "purge":
        print(f"purged {client.purge(args.name)} messages from {args.name}")
    elif args.action == "delete":
        client.delete(args.name)
        print(f"deleted {args.name}")
    elif args.action == "create":
        fields: dict[str, Any] = {"filter": args.filter}
        for option in QUEUE_OPTIONS:
            value = getattr(args, option)
            if value is not None:
                fields[option] = _coerce(value)
        created = client.create(fields)
        print(f"created queue {created['name'] or created['filter']}")
    return 0


def _coerce(value: str) -> Any:
    """Command-line strings to the JSON types the config keys expect."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        return value


_COLUMNS = ("name", "kind", "depth", "bytes", "consumers", "inflight", "in_rate", "out_rate",
            "lag_messages", "lag_seconds")


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = [list(_COLUMNS)] + [[_cell(r.get(c)) for c in _COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "" if value is None else str(value)


def _device(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    if not (root / "device_fw" / "tool.py").exists():
        print("edgeq: the device tool needs the source tree (device_fw/); run it from a clone",
              file=sys.stderr)
        return 1
    sys.path.insert(0, str(root))
    tool = importlib.import_module("device_fw.tool")
    return int(tool.main(argv))
