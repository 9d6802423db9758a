"""The gateway's configuration: one TOML file parsed into frozen typed structs, in one place.

Errors name the file, the key path and what to do (`ConfigError`); unknown keys are refused.
Command-line flags are applied on top with `with_overrides`. What a definition means before
anything runs is here too: the outbox queues a bridge declares (`queue_specs`) and the checks
of queue and bridge definitions. The config sits below every part that reads it, so it imports
only the codec's topic rules and the queue vocabulary (`gateway.queuenames`,
`gateway.lastvalue`), never `gateway.queues` or `gateway.bridge`.
"""

from __future__ import annotations

import re
import tomllib
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from gateway.lastvalue import key_expression_error
from gateway.mqtt.topics import has_wildcard, topic_filter_error
from gateway.queuenames import RESERVED_FILTER_PREFIXES

DEFAULT_NAME = "<embedded default config>"
REDACTED = "<redacted>"

Meta = msgspec.Meta
Port = Annotated[int, Meta(ge=0, le=65535)]
Positive = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[int, Meta(ge=0)]
QUEUE_NAME = re.compile(r"[0-9A-Za-z][-.0-9A-Za-z_]*")
BRIDGE_NAME = re.compile(r"[0-9A-Za-z][-0-9A-Za-z_]*")
OUTBOX_PREFIX = "bridge."
_NOT_NAME = re.compile(r"[^-0-9A-Za-z_]")
_BRIDGE_RESERVED = ("$q/", "$queue/", "$share/")


class ConfigError(Exception):
    """A configuration mistake: the message names the file, the key and the fix."""


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A config section; its repr shows `SECRETS` fields as `'<redacted>'`, so a struct that
    reaches a log line or a traceback never carries a password or token with it."""

    SECRETS: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        shown = (f"{name}={REDACTED!r}" if name in self.SECRETS and getattr(self, name)
                 else f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__)
        return f"{type(self).__name__}({', '.join(shown)})"


class Listener(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One socket the broker accepts MQTT connections on."""

    address: str
    kind: Literal["tcp", "tls", "ws", "wss"] = "tcp"
    path: str = "/mqtt"
    certfile: str = ""
    keyfile: str = ""
    cafile: str = ""
    require_certificate: bool = False

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]


class MqttSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_packet_size: Annotated[int, Meta(ge=64, le=268_435_460)] = 1_048_576
    receive_maximum: Annotated[int, Meta(ge=1, le=65535)] = 100
    topic_alias_maximum: Annotated[int, Meta(ge=0, le=65535)] = 32
    max_keepalive: Annotated[int, Meta(ge=0, le=65535)] = 0
    max_session_expiry: NonNegative = 7 * 24 * 3600
    persistent_session_expiry: NonNegative = 7 * 24 * 3600
    max_queued_messages: NonNegative = 100_000
    max_queued_bytes: NonNegative = 64 * 1024 * 1024
    queued_overflow: Literal["drop_oldest", "drop_new"] = "drop_oldest"
    max_inflight_messages: Annotated[int, Meta(ge=1, le=65535)] = 100
    max_subscriptions_per_client: NonNegative = 1000
    max_connections_per_user: NonNegative = 0
    max_qos: Annotated[int, Meta(ge=0, le=2)] = 2
    retain_available: bool = True
    connect_timeout: Annotated[float, Meta(gt=0)] = 10.0
    sys_interval: Annotated[float, Meta(ge=0)] = 10.0
    client_output_buffer: Positive = 4 * 1024 * 1024
    max_topic_levels: Annotated[int, Meta(ge=1, le=65535)] = 128
    max_topic_length: Annotated[int, Meta(ge=1, le=65535)] = 4096


class StorageSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    synchronous: Literal["normal", "full"] = "full"
    memory_budget: Positive = 64 * 1024 * 1024
    queue_window: Positive = 1000
    max_queues: NonNegative = 1000
    max_instances: NonNegative = 10_000
    instance_expiry: NonNegative = 3600
    max_disk_bytes: NonNegative = 0
    min_free_bytes: NonNegative = 64 * 1024 * 1024


class AuthSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    allow_anonymous: bool = True
    password_file: str = ""
    acl_file: str = ""


class AdminSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    SECRETS = ("token",)
    listen: str = "127.0.0.1:18083"
    token: str = ""
    users: list[str] = msgspec.field(default_factory=list)
    enabled: bool = True
    request_timeout: Annotated[float, Meta(gt=0)] = 10.0
    max_connections: Positive = 32
    history: NonNegative = 900
    history_interval: Annotated[float, Meta(gt=0)] = 5.0
    history_queues: NonNegative = 1000
    metrics_queues: NonNegative = 1000


class ApplianceSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    status_led_pin: int | None = None
    button_pin: int | None = None
    long_press_seconds: Annotated[float, Meta(gt=0)] = 3.0
    backlog_threshold: NonNegative = 10_000


class QueueSpec(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A durable queue bound to a topic filter (docs/queues.md)."""

    filter: str
    name: str = ""
    dispatch: Literal["round_robin", "least_inflight", "random", "sticky"] = "round_robin"
    last_value_key: str = ""
    template: bool = False
    max_messages: NonNegative = 1_000_000
    max_bytes: NonNegative = 1024 * 1024 * 1024
    ttl: NonNegative = 0
    overflow: Literal["drop_oldest", "reject_new", "block"] = "block"
    max_inflight: Annotated[int, Meta(ge=1, le=65535)] = 32
    ack_timeout: NonNegative = 60
    max_deliveries: NonNegative = 5
    redelivery_delay: NonNegative = 0
    redelivery_delay_max: NonNegative = 60
    dead_letter_expired: bool = False

    @property
    def queue_name(self) -> str:
        return self.name or self.filter


class BridgeTopic(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One topic rule of a bridge, like a Mosquitto `topic` line (docs/bridge.md)."""

    pattern: str
    direction: Literal["out", "in", "both"] = "out"
    qos: Annotated[int, Meta(ge=0, le=2)] = 1
    local_prefix: str = ""
    remote_prefix: str = ""


class BridgeSpec(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A connection to an upstream broker with its durable outbox (docs/bridge.md)."""

    SECRETS = ("password",)

    name: str
    address: str
    protocol: Literal["3.1.1", "5.0"] = "3.1.1"
    client_id: str = ""
    username: str = ""
    password: str = ""
    tls: bool = False
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""
    insecure: bool = False
    try_private: bool = True
    clean_start: bool = False
    session_expiry: NonNegative = 3600
    keepalive: Annotated[int, Meta(ge=0, le=65535)] = 60
    max_inflight: Annotated[int, Meta(ge=1, le=65535)] = 32
    reconnect_min: Annotated[float, Meta(gt=0)] = 1.0
    reconnect_max: Annotated[float, Meta(gt=0)] = 60.0
    max_messages: NonNegative = 1_000_000
    max_bytes: NonNegative = 1024 * 1024 * 1024
    overflow: Literal["drop_oldest", "reject_new", "block"] = "drop_oldest"
    topics: list[BridgeTopic] = msgspec.field(default_factory=list)


class Config(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "var"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    listeners: list[Listener] = msgspec.field(
        default_factory=lambda: [Listener(address="127.0.0.1:1883")])
    mqtt: MqttSettings = msgspec.field(default_factory=MqttSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    admin: AdminSettings = msgspec.field(default_factory=AdminSettings)
    appliance: ApplianceSettings = msgspec.field(default_factory=ApplianceSettings)
    queues: list[QueueSpec] = msgspec.field(default_factory=list)
    bridges: list[BridgeSpec] = msgspec.field(default_factory=list)
    source: str = DEFAULT_NAME


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) into its parts; ValueError with the reason if malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_listen_flag(value: str) -> Listener:
    """`--listen` forms: `HOST:PORT`, `tcp://`, `ws://HOST:PORT[/path]`, `tls://`, `wss://`."""
    kind, sep, rest = value.partition("://")
    if not sep:
        kind, rest = "tcp", value
    address, _, path = rest.partition("/")
    if kind not in ("tcp", "tls", "ws", "wss"):
        raise ConfigError(f"--listen {value}: unknown scheme {kind!r}; use tcp://, tls://, ws://"
                          " or wss://")
    try:
        split_address(address)
    except ValueError as e:
        raise ConfigError(f"--listen {value}: {e}") from None
    return Listener(address=address, kind=kind,  # type: ignore[arg-type]
                    path="/" + path if path else "/mqtt")


def _with_tls_files(listener: Listener, config: Config) -> Listener:
    """A `tls://`/`wss://` flag takes its certificate files from the file's TLS listener."""
    if listener.kind not in ("tls", "wss"):
        return listener
    source = next((x for x in config.listeners if x.kind in ("tls", "wss")), None)
    if source is None:
        raise ConfigError(f"--listen {listener.kind}://{listener.address}: no certificate; "
                          "declare a [[listeners]] entry with kind = \"tls\", certfile and "
                          f"keyfile in {config.source}")
    return msgspec.structs.replace(source, address=listener.address, kind=listener.kind,
                                   path=listener.path)


def load(path: str | Path | None = None) -> Config:
    """Read `path` (or the embedded default) into a validated `Config`."""
    if path is None:
        text = resources.files("gateway").joinpath("default.toml").read_text()
        return parse(text, DEFAULT_NAME)
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file: {e.strerror}") from None
    return parse(text, str(p))


def parse(text: str, source: str) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    try:
        config = msgspec.convert({**raw, "source": source}, Config)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_explain(str(e))}") from None
    _check(config)
    return config


def _explain(message: str) -> str:
    """Turn msgspec's `Expected ... - at `$.queues[0].ttl`` into `queues[0].ttl: ...`."""
    text, _, where = message.partition(" - at `")
    key = where.rstrip("`").removeprefix("$").lstrip(".")
    unknown = re.match(r"Object contains unknown field `(.+)`", text)
    if unknown:
        full = f"{key}.{unknown[1]}" if key else unknown[1]
        return f"{full}: unknown key; check its spelling against docs/config.md"
    explained = f"{key or 'top level'}: {text[0].lower()}{text[1:]}"
    choices = _choices(key.rsplit(".", 1)[-1]) if text.startswith("Invalid enum") else ()
    return explained + (f"; use one of {', '.join(choices)}" if choices else "")


def _choices(name: str) -> tuple[str, ...]:
    """The allowed values of a Literal-typed key, for error messages."""
    for struct in (Listener, MqttSettings, StorageSettings, AuthSettings, AdminSettings,
                   ApplianceSettings, QueueSpec, BridgeSpec, BridgeTopic, Config):
        hint = typing.get_type_hints(struct).get(name)
        if hint is not None and typing.get_origin(hint) is Literal:
            return tuple(str(a) for a in typing.get_args(hint))
    return ()


def _check(config: Config) -> None:
    """Rules one field's type cannot express."""
    where = config.source
    for i, listener in enumerate(config.listeners):
        try:
            split_address(listener.address)
        except ValueError as e:
            raise ConfigError(f"{where}: listeners[{i}].address: {e}") from None
        if listener.kind in ("tls", "wss") and not (listener.certfile and listener.keyfile):
            raise ConfigError(f"{where}: listeners[{i}]: a {listener.kind} listener needs "
                              "certfile and keyfile")
    try:
        split_address(config.admin.listen)
    except ValueError as e:
        raise ConfigError(f"{where}: admin.listen: {e}") from None
    names: set[str] = set()
    for i, q in enumerate(config.queues):
        _check_queue(q, f"{where}: queues[{i}]")
        if q.queue_name in names:
            raise ConfigError(f"{where}: queues[{i}].name: queue {q.queue_name!r} is declared "
                              "twice; give one of them another name")
        names.add(q.queue_name)
    _check_bridges(config, names)


def _check_bridges(config: Config, queue_names: set[str]) -> None:
    seen: set[str] = set()
    for i, bridge in enumerate(config.bridges):
        where = f"{config.source}: bridges[{i}]"
        error = bridge_error(bridge)
        if error:
            raise ConfigError(f"{where}.{error}")
        if bridge.name in seen:
            raise ConfigError(f"{where}.name: bridge {bridge.name!r} is declared twice")
        seen.add(bridge.name)
        for spec in outbox_specs([bridge]):
            if spec.queue_name in queue_names:
                raise ConfigError(f"{where}: its outbox queue {spec.queue_name!r} has the name "
                                  "of a queue in [[queues]]; rename that queue")


def _check_queue(q: QueueSpec, where: str) -> None:
    error = topic_filter_error(q.filter)
    if error or q.filter.startswith(RESERVED_FILTER_PREFIXES):
        why = error or "the prefixes $q/, $queue/, $share/ and $dlq/ are reserved"
        raise ConfigError(f"{where}.filter: {q.filter!r} is not a usable topic filter ({why})")
    if q.name and not QUEUE_NAME.fullmatch(q.name):
        raise ConfigError(f"{where}.name: {q.name!r} must match [0-9A-Za-z][-.0-9A-Za-z_]*")
    if q.template and not has_wildcard(q.filter):
        raise ConfigError(f"{where}.template: a template queue needs a wildcard filter such as "
                          "'lights/+/commands'")
    if q.last_value_key:
        error = key_expression_error(q.last_value_key)
        if error:
            raise ConfigError(f"{where}.last_value_key: {error}")


def queue_spec(fields: dict[str, Any], where: str = "queue") -> QueueSpec:
    """Build and check a `QueueSpec` from loose fields (CLI and admin API)."""
    try:
        spec = msgspec.convert(fields, QueueSpec)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{where}: {_explain(str(e))}") from None
    _check_queue(spec, where)
    return spec


def with_overrides(config: Config, listen: list[str] | None = None,
                   data_dir: str | None = None, admin: str | None = None) -> Config:
    """Command-line flags override the file."""
    changes: dict[str, Any] = {}
    if listen:
        changes["listeners"] = [_with_tls_files(parse_listen_flag(v), config) for v in listen]
    if data_dir:
        changes["data_dir"] = data_dir
    if admin:
        try:
            split_address(admin)
        except ValueError as e:
            example = f"; e.g. --admin 127.0.0.1:{admin}" if admin.isdigit() else ""
            raise ConfigError(f"--admin {admin}: {e}{example}") from None
        changes["admin"] = msgspec.structs.replace(config.admin, listen=admin)
    return msgspec.structs.replace(config, **changes) if changes else config


# ------------------------------------------------------------------------ bridges: outbox queues

def outbox_names(spec: BridgeSpec) -> dict[int, str]:
    """Queue name per `out`/`both` rule index: `bridge.<name>.<filter as name>[-n]`."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for i, t in enumerate(spec.topics):
        if t.direction == "in":
            continue
        base = OUTBOX_PREFIX + spec.name + "." + filter_as_name(t.local_prefix + t.pattern)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        names[i] = name
    return names


def filter_as_name(topic_filter: str) -> str:
    """`sensors/+/temp` -> `sensors.any.temp`, `a/#` -> `a.all`; other characters -> `_`."""
    levels = ["any" if level == "+" else "all" if level == "#" else _NOT_NAME.sub("_", level)
              for level in topic_filter.split("/")]
    return ".".join(levels)


def outbox_specs(bridges: Sequence[BridgeSpec]) -> list[QueueSpec]:
    """The queue definitions of every bridge's outbox: never dead-lettered, never timed out
    (a PUBACK lost with the connection is handled by redelivery on reconnect)."""
    specs: list[QueueSpec] = []
    for bridge in bridges:
        names = outbox_names(bridge)
        for i, name in names.items():
            t = bridge.topics[i]
            specs.append(QueueSpec(
                filter=t.local_prefix + t.pattern, name=name, max_messages=bridge.max_messages,
                max_bytes=bridge.max_bytes, overflow=bridge.overflow,
                max_inflight=bridge.max_inflight, ack_timeout=0, max_deliveries=0))
    return specs


def queue_specs(config: Config) -> list[QueueSpec]:
    """Every queue the engine should know from the config: `[[queues]]` and bridge outboxes."""
    return [*config.queues, *outbox_specs(config.bridges)]


# ------------------------------------------------------------------------------ bridges: checks

def bridge_error(spec: BridgeSpec) -> str | None:
    """`key: what is wrong` for the first mistake in a bridge definition, or None."""
    if not BRIDGE_NAME.fullmatch(spec.name):
        return f"name: {spec.name!r} must match [0-9A-Za-z][-0-9A-Za-z_]*"
    try:
        split_address(spec.address)
    except ValueError as e:
        return f"address: {e}"
    if not spec.tls:
        for key in ("cafile", "certfile", "keyfile", "insecure"):
            if getattr(spec, key):
                return f"{key}: only used with tls = true"
    if spec.keyfile and not spec.certfile:
        return "keyfile: needs certfile"
    if spec.password and not spec.username and spec.protocol == "3.1.1":
        return "password: MQTT 3.1.1 needs a username with a password"
    if spec.reconnect_min > spec.reconnect_max:
        return "reconnect_min: must not be above reconnect_max"
    if not spec.topics:
        return "topics: a bridge needs at least one [[bridges.topics]] rule"
    for i, topic in enumerate(spec.topics):
        error = topic_rule_error(topic)
        if error:
            return f"topics[{i}].{error}"
    return None


def topic_rule_error(t: BridgeTopic) -> str | None:
    error = topic_filter_error(t.pattern)
    if error or t.pattern.startswith(_BRIDGE_RESERVED):
        return f"pattern: {t.pattern!r} is not a usable topic filter ({error or 'reserved'})"
    for key in ("local_prefix", "remote_prefix"):
        prefix: str = getattr(t, key)
        if "+" in prefix or "#" in prefix or "\0" in prefix:
            return f"{key}: {prefix!r} must not contain wildcards"
        if prefix.startswith(_BRIDGE_RESERVED):
            return f"{key}: {prefix!r} starts with a reserved prefix"
        if topic_filter_error(prefix + t.pattern):
            return f"{key}: {prefix + t.pattern!r} is not a usable topic filter"
    return None
