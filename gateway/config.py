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


def doc(text: str) -> msgspec.Meta:
    """A config key's meaning, for docs/config.md (`gateway.configdoc`)."""
    return msgspec.Meta(description=text)


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

    address: Annotated[str, doc("`HOST:PORT` (IPv6 as `[::1]:1883`).")]
    kind: Annotated[Literal["tcp", "tls", "ws", "wss"], doc(
        "`tcp`, `tls`, `ws` (MQTT over WebSocket) or `wss` (WebSocket over TLS).")] = "tcp"
    path: Annotated[str, doc("HTTP path of a WebSocket listener.")] = "/mqtt"
    certfile: Annotated[str, doc("PEM server certificate (chain) for `tls`/`wss`.")] = ""
    keyfile: Annotated[str, doc("PEM private key for `certfile`.")] = ""
    cafile: Annotated[str, doc("PEM CA bundle that client certificates are verified against.")] = ""
    require_certificate: Annotated[bool, doc(
        "Refuse TLS clients without a certificate signed by `cafile`.")] = False

    @property
    def host(self) -> str:
        return split_address(self.address)[0]

    @property
    def port(self) -> int:
        return split_address(self.address)[1]


class MqttSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_packet_size: Annotated[int, Meta(ge=64, le=268_435_460), doc(
        "Largest packet accepted, in bytes; a larger one is refused from its header "
        "(DISCONNECT 0x95) before it is buffered. Sent to 5.0 clients as Maximum "
        "Packet Size.")] = 1_048_576
    receive_maximum: Annotated[int, Meta(ge=1, le=65535), doc(
        "How many unacknowledged QoS 1/2 PUBLISH a client may send us (5.0 Receive Maximum; "
        "more is a protocol error 0x93).")] = 100
    topic_alias_maximum: Annotated[int, Meta(ge=0, le=65535), doc(
        "Topic aliases a 5.0 client may use towards us.")] = 32
    max_keepalive: Annotated[int, Meta(ge=0, le=65535), doc(
        "Upper bound for client keepalive in seconds (0: none). A client asking for more (or "
        "0) is told Server Keep Alive.")] = 0
    max_session_expiry: Annotated[NonNegative, doc(
        "Upper bound for 5.0 session expiry in seconds (a client asking for more is told the "
        "bound in CONNACK); an offline session is deleted, with its messages, when it "
        "expires.")] = 7 * 24 * 3600
    persistent_session_expiry: Annotated[NonNegative, doc(
        "Seconds a 3.1.1 persistent session (clean session 0) is kept while its client is "
        "away, like Mosquitto's `persistent_client_expiration` (0: forever).")] = 7 * 24 * 3600
    max_queued_messages: Annotated[NonNegative, doc(
        "QoS 1/2 messages a session may owe beyond its in-flight window (offline clients "
        "included; 0: no limit). Persistent sessions keep them on disk, see "
        "docs/sizing.md.")] = 100_000
    max_queued_bytes: Annotated[NonNegative, doc(
        "Bytes (topic, payload, properties) a session may owe beyond its in-flight window (0:"
        " no limit).")] = 64 * 1024 * 1024
    queued_overflow: Annotated[Literal["drop_oldest", "drop_new"], doc(
        "At `max_queued_messages` or `max_queued_bytes`: `drop_oldest` or `drop_new`; logged "
        "once per episode, counted in `edgeq_sessions_dropped_total`.")] = "drop_oldest"
    max_inflight_messages: Annotated[int, Meta(ge=1, le=65535), doc(
        "Outbound QoS 1/2 messages in flight per client (the client's Receive Maximum lowers "
        "it further).")] = 100
    max_subscriptions_per_client: Annotated[NonNegative, doc(
        "Subscriptions one session may hold (0: no limit); more are refused with SUBACK 0x97 "
        "(3.1.1: 0x80).")] = 1000
    max_connections_per_user: Annotated[NonNegative, doc(
        "Connections one user name may have open at once (0: no limit); more are refused with"
        " CONNACK 0x97 (3.1.1: 0x03).")] = 0
    max_qos: Annotated[int, Meta(ge=0, le=2), doc("Highest QoS granted (0, 1 or 2).")] = 2
    retain_available: Annotated[bool, doc("Whether retained messages are accepted.")] = True
    connect_timeout: Annotated[float, Meta(gt=0), doc(
        "Seconds a new connection has to send CONNECT (slowloris guard).")] = 10.0
    sys_interval: Annotated[float, Meta(ge=0), doc(
        "Seconds between `$SYS/` updates (0: off).")] = 10.0
    client_output_buffer: Annotated[Positive, doc(
        "Bytes a client may leave unread before it is disconnected.")] = 4 * 1024 * 1024
    max_topic_levels: Annotated[int, Meta(ge=1, le=65535), doc(
        "Most levels in a topic name or filter (EMQX's default). A deeper PUBLISH gets "
        "PUBACK/PUBREC 0x90, a deeper filter SUBACK 0x8F, a deeper will topic CONNACK 0x90.")] = 128
    max_topic_length: Annotated[int, Meta(ge=1, le=65535), doc(
        "Most bytes in a topic name or filter; longer ones are refused like deeper ones.")] = 4096


class StorageSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    synchronous: Annotated[Literal["normal", "full"], doc(
        "`full`: an acknowledged message survives a process crash and a power loss, at the "
        "cost of one fsync per group commit; `normal`: only a process crash (`kill -9`), "
        "without the fsync. See docs/queues.md.")] = "full"
    memory_budget: Annotated[Positive, doc(
        "Bytes of in-memory queue windows and client buffers; above it the broker pauses "
        "reading from producers instead of growing.")] = 64 * 1024 * 1024
    queue_window: Annotated[Positive, doc(
        "Messages per queue kept in RAM; the rest wait on disk.")] = 1000
    max_queues: Annotated[NonNegative, doc(
        "Queues that may exist, template instances and dead-letter queues not counted; "
        "creating one more at run time is refused (0: no limit).")] = 1000
    max_instances: Annotated[NonNegative, doc(
        "Template instances that may exist; a PUBLISH or `$q/` SUBSCRIBE that would create "
        "one more gets 0x97 Quota exceeded (0: no limit).")] = 10_000
    instance_expiry: Annotated[NonNegative, doc(
        "Seconds an empty template instance without consumers is kept before it is removed "
        "(0: never).")] = 3600
    max_disk_bytes: Annotated[NonNegative, doc(
        "Bytes the store (database and its journal) may use (0: no limit); at it, QoS 1/2 "
        "messages that would be stored are refused (5.0 PUBACK 0x97) until space is freed.")] = 0
    min_free_bytes: Annotated[NonNegative, doc(
        "Free bytes to leave on the store's file system; below it, the same refusal as "
        "`max_disk_bytes`.")] = 64 * 1024 * 1024


class AuthSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    allow_anonymous: Annotated[bool, doc("Accept clients without a user name.")] = True
    password_file: Annotated[str, doc(
        "Password file managed with `edgeq passwd` (empty: none).")] = ""
    acl_file: Annotated[str, doc(
        "ACL file (empty: everyone may do everything they are authenticated for).")] = ""


class AdminSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    SECRETS = ("token",)
    listen: Annotated[str, doc(
        "`HOST:PORT` of the admin API. `--admin` overrides it.")] = "127.0.0.1:18083"
    token: Annotated[str, doc(
        "Bearer token; empty: a random one is written to `DATA_DIR/admin.json` (mode 0640) at"
        " the first start and kept across restarts.")] = ""
    users: Annotated[list[str], doc(
        "Users of the password file who may also use the admin API with HTTP Basic auth "
        "(`edgeq top --user NAME`).")] = msgspec.field(default_factory=list)
    enabled: Annotated[bool, doc("Serve the admin API at all.")] = True
    request_timeout: Annotated[float, Meta(gt=0), doc(
        "Seconds a client has to send a whole request (headers and body) and to read the "
        "answer; an idle or slow connection is closed (408 when part of a request came).")] = 10.0
    max_connections: Annotated[Positive, doc(
        "Open admin connections at most; one more is answered 503 and closed.")] = 32
    history: Annotated[NonNegative, doc(
        "Seconds of per-queue history (depth, lag, in/s, out/s) kept in memory for `edgeq "
        "top` and `GET /api/v1/history` (0: none).")] = 900
    history_interval: Annotated[float, Meta(gt=0), doc(
        "Seconds between two history samples; the in/s and out/s of a sample are averages "
        "over this interval.")] = 5.0
    history_queues: Annotated[NonNegative, doc(
        "Queues that get a history at most (20 bytes a queue and sample: 3.6 KB a queue at "
        "the defaults); more get none.")] = 1000
    metrics_queues: Annotated[NonNegative, doc(
        "Queues with their own series in `/metrics` at most, the oldest first (configured "
        "queues before template instances); `edgeq_metrics_queues_left_out` counts the "
        "others.")] = 1000


class ApplianceSettings(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    status_led_pin: Annotated[int | None, doc("BCM pin of the status LED (unset: no LED).")] = None
    button_pin: Annotated[int | None, doc("BCM pin of the button (unset: no button).")] = None
    long_press_seconds: Annotated[float, Meta(gt=0), doc(
        "Hold time that turns a press into a clean shutdown.")] = 3.0
    backlog_threshold: Annotated[NonNegative, doc(
        "Total queued messages above which the LED shows `backlog`.")] = 10_000


class QueueSpec(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A durable queue bound to a topic filter (docs/queues.md)."""

    filter: Annotated[str, doc("Topic filter whose messages the queue stores (wildcards allowed).")]
    name: Annotated[str, doc(
        "Queue name for `$queue/<name>`, matching `[0-9A-Za-z][-.0-9A-Za-z_]*`; defaults to "
        "the filter.")] = ""
    dispatch: Annotated[Literal["round_robin", "least_inflight", "random", "sticky"], doc(
        "`round_robin`, `least_inflight`, `random` or `sticky`.")] = "round_robin"
    last_value_key: Annotated[str, doc(
        "Makes it a last-value queue: `user_property:NAME`, `topic_level:N`, `json:PATH` or "
        "`client_id`; alternatives joined by `|` are tried in order.")] = ""
    template: Annotated[bool, doc(
        "One queue per concrete topic of a wildcard filter, created on first publish or "
        "subscribe.")] = False
    max_messages: Annotated[NonNegative, doc("Hard limit on stored messages.")] = 1_000_000
    max_bytes: Annotated[NonNegative, doc(
        "Hard limit on stored payload and topic bytes.")] = 1024 * 1024 * 1024
    ttl: Annotated[NonNegative, doc(
        "Seconds a message may wait (0: forever); MQTT 5 message expiry also applies.")] = 0
    overflow: Annotated[Literal["drop_oldest", "reject_new", "block"], doc(
        "At a limit: `drop_oldest`, `reject_new` (5.0 PUBACK 0x97) or `block` (stop reading "
        "from the producer until there is room).")] = "block"
    max_inflight: Annotated[int, Meta(ge=1, le=65535), doc(
        "Unacknowledged messages per consumer (also capped by its 5.0 Receive Maximum).")] = 32
    ack_timeout: Annotated[NonNegative, doc(
        "Seconds before an unacknowledged message is redelivered (0: never).")] = 60
    max_deliveries: Annotated[NonNegative, doc(
        "Deliveries before a message moves to the dead-letter queue (0: unlimited).")] = 5
    redelivery_delay: Annotated[NonNegative, doc(
        "Seconds a message rejected by a consumer waits before it is offered again, doubling "
        "with each delivery (0: at once).")] = 0
    redelivery_delay_max: Annotated[NonNegative, doc("Upper bound of that delay, in seconds.")] = 60
    dead_letter_expired: Annotated[bool, doc(
        "Move messages that expire (ttl or message expiry) to the dead-letter queue instead "
        "of deleting them.")] = False

    @property
    def queue_name(self) -> str:
        return self.name or self.filter


class BridgeTopic(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One topic rule of a bridge, like a Mosquitto `topic` line (docs/bridge.md)."""

    pattern: Annotated[str, doc("Topic filter, wildcards allowed.")]
    direction: Annotated[Literal["out", "in", "both"], doc(
        "`out` (local to upstream), `in` (upstream to local) or `both`.")] = "out"
    qos: Annotated[int, Meta(ge=0, le=2), doc(
        "`out`: QoS towards the upstream (0, or 1 for 1 and 2); `in`: QoS of the upstream "
        "subscription.")] = 1
    local_prefix: Annotated[str, doc(
        "Prefix of the local topics: local filter = `local_prefix` + `pattern`.")] = ""
    remote_prefix: Annotated[str, doc(
        "Prefix of the upstream topics: remote filter = `remote_prefix` + `pattern`.")] = ""


class BridgeSpec(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A connection to an upstream broker with its durable outbox (docs/bridge.md)."""

    SECRETS = ("password",)

    name: Annotated[str, doc(
        "Bridge name, matching `[0-9A-Za-z][-0-9A-Za-z_]*`; used in `$SYS` topics, outbox "
        "queue names and the local client id `$bridge/<name>`.")]
    address: Annotated[str, doc("`HOST:PORT` of the upstream broker.")]
    protocol: Annotated[Literal["3.1.1", "5.0"], doc("`3.1.1` or `5.0`.")] = "3.1.1"
    client_id: Annotated[str, doc("Client id at the upstream; empty: `<hostname>.<name>`.")] = ""
    username: Annotated[str, doc("User name at the upstream (empty: none).")] = ""
    password: Annotated[str, doc("Password at the upstream (empty: none).")] = ""
    tls: Annotated[bool, doc(
        "Connect with TLS, verifying the upstream's certificate and host name.")] = False
    cafile: Annotated[str, doc(
        "PEM CA bundle to verify the upstream with (empty: the system's CAs).")] = ""
    certfile: Annotated[str, doc(
        "PEM client certificate (chain) for upstreams that require one.")] = ""
    keyfile: Annotated[str, doc("PEM private key of `certfile` (empty: in `certfile`).")] = ""
    insecure: Annotated[bool, doc(
        "Skip certificate and host name verification (tests and lab setups only).")] = False
    try_private: Annotated[bool, doc(
        "MQTT 3.1.1: announce a bridge (protocol level 0x84, as Mosquitto) so that the "
        "upstream does not echo our own messages back; falls back to plain 3.1.1 when "
        "refused.")] = True
    clean_start: Annotated[bool, doc(
        "Start a new upstream session at each connection (the upstream then forgets `in` "
        "messages sent while we were away).")] = False
    session_expiry: Annotated[NonNegative, doc(
        "MQTT 5.0: seconds the upstream keeps our session after a disconnect.")] = 3600
    keepalive: Annotated[int, Meta(ge=0, le=65535), doc(
        "Keepalive in seconds; an upstream silent for 1.5 times as long is given up and "
        "reconnected.")] = 60
    max_inflight: Annotated[int, Meta(ge=1, le=65535), doc(
        "Outbox messages sent and not yet acknowledged by the upstream (also capped by its "
        "5.0 Receive Maximum).")] = 32
    reconnect_min: Annotated[float, Meta(gt=0), doc(
        "First reconnect delay in seconds; it doubles at each failure.")] = 1.0
    reconnect_max: Annotated[float, Meta(gt=0), doc(
        "Largest reconnect delay in seconds; each delay is drawn between half and all of the "
        "current step (jitter).")] = 60.0
    max_messages: Annotated[NonNegative, doc(
        "Outbox limit on stored messages, per `out` rule.")] = 1_000_000
    max_bytes: Annotated[NonNegative, doc(
        "Outbox limit on stored payload and topic bytes, per `out` rule.")] = 1024 * 1024 * 1024
    overflow: Annotated[Literal["drop_oldest", "reject_new", "block"], doc(
        "At an outbox limit: `drop_oldest` (keep the newest data, never slow local "
        "producers), `reject_new` or `block` (as for queues; these hold back local producers "
        "while the uplink is down).")] = "drop_oldest"
    topics: Annotated[list[BridgeTopic], doc(
        "Topic rules (array of tables, like Mosquitto's "
        "`topic` lines).")] = msgspec.field(default_factory=list)


class Config(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    data_dir: Annotated[str, doc(
        "Directory of the SQLite store (`edgeq.db`) and `admin.json`. Relative paths are "
        "relative to the working directory. `--data-dir` overrides it.")] = "var"
    log_level: Annotated[Literal["debug", "info", "warning", "error"], doc(
        "`debug`, `info`, `warning` or `error`. Under systemd, logs go to the journal.")] = "info"
    listeners: Annotated[list[Listener], doc(
        "Sockets to accept MQTT on (array of tables). `--listen` replaces them "
        "all.")] = msgspec.field(
        default_factory=lambda: [Listener(address="127.0.0.1:1883")])
    mqtt: Annotated[MqttSettings, doc(
        "Protocol limits.")] = msgspec.field(default_factory=MqttSettings)
    storage: Annotated[StorageSettings, doc(
        "The SQLite store.")] = msgspec.field(default_factory=StorageSettings)
    auth: Annotated[AuthSettings, doc(
        "Authentication and authorisation "
        "(docs/operations.md).")] = msgspec.field(default_factory=AuthSettings)
    admin: Annotated[AdminSettings, doc(
        "The admin API (HTTP/JSON on localhost; "
        "`edgeq queue`, `edgeq top`).")] = msgspec.field(default_factory=AdminSettings)
    appliance: Annotated[ApplianceSettings, doc(
        "Raspberry Pi status LED and button "
        "(gpiozero).")] = msgspec.field(default_factory=ApplianceSettings)
    queues: Annotated[list[QueueSpec], doc(
        "Durable queues (array of tables; docs/queues.md).")] = msgspec.field(default_factory=list)
    bridges: Annotated[list[BridgeSpec], doc(
        "Connections to upstream MQTT brokers (array of tables; docs/bridge.md). Local topics"
        " go up through a durable outbox queue per `out` rule, named "
        "`bridge.<name>.<filter>`; upstream topics come "
        "down into the broker.")] = msgspec.field(default_factory=list)
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
