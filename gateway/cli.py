"""The `edgeq` command line: a thin layer over the library (serve, queue, passwd, top, ...).

Every failure the user can fix ends in one readable line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any

import msgspec

from gateway import __version__
from gateway import config as config_mod
from gateway.admin.endpoint import AdminError
from gateway.config import ConfigError, QueueSpec
from gateway.logtext import escape

# `edgeq queue create` options: every config key but the filter, with its default (for its type)
QUEUE_FIELDS = [f for f in msgspec.structs.fields(QueueSpec) if f.name != "filter"]
QUEUE_OPTIONS = {f.name: f.default for f in QUEUE_FIELDS}


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

    check = commands.add_parser(
        "check-config", help="validate the config and the password, ACL and TLS files it names "
                             "(like nginx -t); exit 1 with FILE:LINE: reason per problem")
    check.add_argument("--config", metavar="FILE", help="TOML config (default: embedded)")

    admin = argparse.ArgumentParser(add_help=False)
    _admin_flags(admin)
    queue = commands.add_parser("queue", help="list, show, create, peek, replay, purge or "
                                              "delete queues")
    actions = queue.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every queue with depth and lag", parents=[admin])
    listing.add_argument("--kind", choices=["standard", "last_value", "template", "instance",
                                            "dead_letter"], help="only queues of this kind")
    for name, text in (("show", "one queue in detail"), ("purge", "drop every ready message"),
                       ("delete", "remove a queue and its messages"),
                       ("replay", "move a queue's dead letters back into their queues")):
        actions.add_parser(name, help=text, parents=[admin]).add_argument("name")
    peek = actions.add_parser("peek", help="the oldest ready messages, without consuming them",
                              parents=[admin])
    peek.add_argument("name")
    peek.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    create = actions.add_parser("create", help="declare a queue at run time", parents=[admin])
    create.add_argument("filter", help="topic filter whose messages the queue stores")
    for field in QUEUE_FIELDS:
        _queue_option(create, field)

    commands.add_parser("passwd", help="manage the password file (like mosquitto_passwd)",
                        add_help=False)
    top = commands.add_parser("top", help="live terminal view of queues and clients")
    _admin_flags(top)
    top.add_argument("--host", help="the gateway's host (admin API, with --admin-port)")
    top.add_argument("--admin-port", type=int, default=18083,
                     help="admin API port (default 18083)")
    top.add_argument("--port", dest="mqtt_port", help=argparse.SUPPRESS)
    top.add_argument("--user", help="a user of admin.users; the password is asked for "
                                    "(or EDGEQ_ADMIN_PASSWORD)")
    top.add_argument("--lag-alert", type=float, default=30.0, metavar="SECONDS",
                     help="highlight queues whose lag passes this (default 30)")
    demo = commands.add_parser("demo", help="play the three queue patterns against a gateway")
    _admin_flags(demo)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=1883)
    demo.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    commands.add_parser("device", help="ESP32 firmware: flash, deploy, config, send, update",
                        add_help=False)
    return parser


def _queue_option(create: argparse.ArgumentParser, field: msgspec.structs.FieldInfo) -> None:
    """`--max-messages VALUE`, with the config key's meaning, choices and default."""
    from gateway.configdoc import description

    text = description(QueueSpec, field.name).replace("`", "").replace("%", "%%")
    kind = field.type
    while typing.get_origin(kind) is typing.Annotated:  # the doc(...) and constraints
        kind = typing.get_args(kind)[0]
    choices = list(typing.get_args(kind)) if typing.get_origin(kind) is typing.Literal else None
    if isinstance(field.default, bool):
        choices = ["true", "false"]
    default = str(field.default).lower() if isinstance(field.default, bool) else field.default
    metavar = "N" if isinstance(field.default, int) else "TEXT"
    create.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name,
                        metavar="{" + ",".join(choices) + "}" if choices else metavar,
                        help=f"{text} (default: {default if default != '' else 'none'})")


def _admin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="admin API URL (default: from DATA_DIR/admin.json)")
    parser.add_argument("--token", help="admin API token")
    parser.add_argument("--data-dir", default="var", help="the gateway's data directory")


# the optional extra (pyproject.toml) that brings each package a command may miss
EXTRAS = {"textual": "tui", "paho": "device", "esptool": "device", "mpremote": "device",
          "gpiozero": "appliance", "systemd": "systemd"}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args_list)
    except ModuleNotFoundError as e:
        package = (e.name or "").split(".")[0]
        if package not in EXTRAS:
            raise
        command = " ".join(args_list[:1])
        print(f"edgeq: `edgeq {command}` needs {package}, which comes with the "
              f"{EXTRAS[package]} extra: pip install 'edgeq[{EXTRAS[package]}]'", file=sys.stderr)
        return 1


def _main(args_list: list[str]) -> int:
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
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "queue":
        return _queue(args)
    if args.command == "top":
        return _top(args)
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo(args.host, args.port, url=args.url, token=args.token,
                        data_dir=args.data_dir, duration=args.duration)
    raise AssertionError(args.command)


def _top(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClient
    from tui.app import run_top

    if args.mqtt_port is not None:
        raise ConfigError("top: --port is the MQTT port in every command; the admin API's "
                          "port is --admin-port (default 18083)")
    url = args.url or (f"http://{args.host}:{args.admin_port}" if args.host else None)
    password = None
    if args.user:
        password = os.environ.get("EDGEQ_ADMIN_PASSWORD") or getpass.getpass(
            f"password for {args.user}: ")

    def discover() -> AdminClient:
        return AdminClient.discover(url, args.token, args.data_dir, args.user, password)

    return run_top(discover(), lag_alert=args.lag_alert, rediscover=discover)


def _serve(args: argparse.Namespace) -> int:
    from gateway.appliance.systemd import setup_logging
    from gateway.datadir import lock_data_dir
    from gateway.serve import serve

    config = config_mod.load(args.config)
    overrides: dict[str, object] = {"listen": args.listen, "data_dir": args.data_dir,
                                    "admin": args.admin}
    config = config_mod.with_overrides(config, **overrides)  # type: ignore[arg-type]
    lock = lock_data_dir(config.data_dir)
    try:
        setup_logging((args.log_level or config.log_level).upper())
        logging.getLogger("gateway").info("config: %s", config.source)
        return serve(config, args.config, overrides)
    finally:
        lock.release()


def _check_config(path: str | None) -> int:
    from gateway.checkconfig import check, checked_files

    config, problems = check(path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if config is None or problems:
        return 1
    print(f"{config.source}: OK ({checked_files(config)})")
    return 0


def _queue(args: argparse.Namespace) -> int:
    from gateway.admin.client import AdminClient

    client = AdminClient.discover(args.url, args.token, args.data_dir)
    if args.action == "list":
        _print_table([q for q in client.queues() if args.kind in (None, q["kind"])])
    elif args.action == "peek":
        for message in client.peek(args.name, args.limit):
            print(json.dumps(message))
    elif args.action == "replay":
        print(f"replayed {client.replay(args.name)} dead letters of {args.name} into their "
              "queues")
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
                fields[option] = _coerce(option, value)
        created = client.create(fields)
        print(f"created queue {created['name'] or created['filter']}")
    return 0


def _coerce(option: str, value: str) -> Any:
    """A command-line string as the JSON type of its config key (by the key's default, so
    `--name 2024` stays a name); the gateway checks everything else."""
    default = QUEUE_OPTIONS[option]
    flag = "--" + option.replace("_", "-")
    if isinstance(default, bool):
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"{flag}: {value!r} is neither true nor false")
        return value.lower() == "true"
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{flag}: {value!r} is not a whole number") from None
    return value


_COLUMNS = ("name", "kind", "depth", "bytes", "consumers", "inflight", "in_rate", "out_rate",
            "lag_messages", "lag_seconds")


def _print_table(rows: list[dict[str, Any]]) -> None:
    """A rich table without borders: aligned columns on a terminal, whole cells (never cut to
    the width) when piped; cells are plain text, so a `[` in a queue name is no markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in _COLUMNS:
        table.add_column(column, no_wrap=True, overflow="ignore",
                         justify="left" if column in ("name", "kind") else "right")
    for r in rows:
        table.add_row(*(Text(_cell(r.get(c))) for c in _COLUMNS))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)
    with console.capture() as captured:
        console.print(table)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "" if value is None else escape(str(value))  # a queue name may hold ESC


def _device(argv: list[str]) -> int:
    from gateway.device import tool

    if not tool.FW_DIR.is_dir():
        print("edgeq: the device tool needs the source tree (device_fw/); run it from a clone",
              file=sys.stderr)
        return 1
    return tool.main(argv)
