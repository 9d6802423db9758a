"""Generate docs/config.md from the config schema, so the reference cannot drift.

Every field of every struct in `gateway.config` needs an entry in `DESCRIPTIONS`; a test fails
when one is missing or when docs/config.md differs from `render()`. Regenerate with
`python -m gateway.configdoc > docs/config.md`.
"""

from __future__ import annotations

import msgspec

from gateway import config as c

DESCRIPTIONS: dict[str, str] = {
    "data_dir": "Directory of the SQLite store (`edgeq.db`) and `admin.json`. Relative paths "
                "are relative to the working directory. `--data-dir` overrides it.",
    "log_level": "`debug`, `info`, `warning` or `error`. Under systemd, logs go to the journal.",
    "listeners": "Sockets to accept MQTT on (array of tables). `--listen` replaces them all.",
    "listeners.address": "`HOST:PORT` (IPv6 as `[::1]:1883`).",
    "listeners.kind": "`tcp`, `tls`, `ws` (MQTT over WebSocket) or `wss` (WebSocket over TLS).",
    "listeners.path": "HTTP path of a WebSocket listener.",
    "listeners.certfile": "PEM server certificate (chain) for `tls`/`wss`.",
    "listeners.keyfile": "PEM private key for `certfile`.",
    "listeners.cafile": "PEM CA bundle that client certificates are verified against.",
    "listeners.require_certificate": "Refuse TLS clients without a certificate signed by "
                                     "`cafile`.",
    "mqtt": "Protocol limits.",
    "mqtt.max_packet_size": "Largest packet accepted, in bytes; a larger one is refused from its "
                            "header (DISCONNECT 0x95) before it is buffered. Sent to 5.0 "
                            "clients as Maximum Packet Size.",
    "mqtt.receive_maximum": "How many unacknowledged QoS 1/2 PUBLISH a client may send us "
                            "(5.0 Receive Maximum; more is a protocol error 0x93).",
    "mqtt.topic_alias_maximum": "Topic aliases a 5.0 client may use towards us.",
    "mqtt.max_keepalive": "Upper bound for client keepalive in seconds (0: none). A client "
                          "asking for more (or 0) is told Server Keep Alive.",
    "mqtt.max_session_expiry": "Upper bound for 5.0 session expiry in seconds (a client asking "
                               "for more is told the bound in CONNACK); an offline session is "
                               "deleted, with its messages, when it expires.",
    "mqtt.persistent_session_expiry": "Seconds a 3.1.1 persistent session (clean session 0) is "
                                      "kept while its client is away, like Mosquitto's "
                                      "`persistent_client_expiration` (0: forever).",
    "mqtt.max_queued_messages": "QoS 1/2 messages a session may owe beyond its in-flight window "
                                "(offline clients included; 0: no limit). Persistent sessions "
                                "keep them on disk, see docs/sizing.md.",
    "mqtt.max_queued_bytes": "Bytes (topic, payload, properties) a session may owe beyond its "
                             "in-flight window (0: no limit).",
    "mqtt.queued_overflow": "At `max_queued_messages` or `max_queued_bytes`: `drop_oldest` or "
                            "`drop_new`; logged once per episode, counted in "
                            "`edgeq_sessions_dropped_total`.",
    "mqtt.max_inflight_messages": "Outbound QoS 1/2 messages in flight per client (the "
                                  "client's Receive Maximum lowers it further).",
    "mqtt.max_subscriptions_per_client": "Subscriptions one session may hold (0: no limit); "
                                         "more are refused with SUBACK 0x97 (3.1.1: 0x80).",
    "mqtt.max_connections_per_user": "Connections one user name may have open at once (0: no "
                                     "limit); more are refused with CONNACK 0x97 (3.1.1: 0x03).",
    "mqtt.max_qos": "Highest QoS granted (0, 1 or 2).",
    "mqtt.retain_available": "Whether retained messages are accepted.",
    "mqtt.connect_timeout": "Seconds a new connection has to send CONNECT (slowloris guard).",
    "mqtt.sys_interval": "Seconds between `$SYS/` updates (0: off).",
    "mqtt.client_output_buffer": "Bytes a client may leave unread before it is disconnected.",
    "mqtt.max_topic_levels": "Most levels in a topic name or filter (EMQX's default). A deeper "
                             "PUBLISH gets PUBACK/PUBREC 0x90, a deeper filter SUBACK 0x8F, a "
                             "deeper will topic CONNACK 0x90.",
    "mqtt.max_topic_length": "Most bytes in a topic name or filter; longer ones are refused "
                             "like deeper ones.",
    "storage": "The SQLite store.",
    "storage.synchronous": "`full`: an acknowledged message survives a process crash and a "
                           "power loss, at the cost of one fsync per group commit; `normal`: "
                           "only a process crash (`kill -9`), without the fsync. See "
                           "docs/queues.md.",
    "storage.memory_budget": "Bytes of in-memory queue windows and client buffers; above it the "
                             "broker pauses reading from producers instead of growing.",
    "storage.queue_window": "Messages per queue kept in RAM; the rest wait on disk.",
    "storage.max_queues": "Queues that may exist, template instances and dead-letter queues "
                          "not counted; creating one more at run time is refused (0: no limit).",
    "storage.max_instances": "Template instances that may exist; a PUBLISH or `$q/` SUBSCRIBE "
                             "that would create one more gets 0x97 Quota exceeded (0: no limit).",
    "storage.instance_expiry": "Seconds an empty template instance without consumers is kept "
                               "before it is removed (0: never).",
    "storage.max_disk_bytes": "Bytes the store (database and its journal) may use (0: no "
                              "limit); at it, QoS 1/2 messages that would be stored are refused "
                              "(5.0 PUBACK 0x97) until space is freed.",
    "storage.min_free_bytes": "Free bytes to leave on the store's file system; below it, the "
                              "same refusal as `max_disk_bytes`.",
    "auth": "Authentication and authorisation (docs/operations.md).",
    "auth.allow_anonymous": "Accept clients without a user name.",
    "auth.password_file": "Password file managed with `edgeq passwd` (empty: none).",
    "auth.acl_file": "ACL file (empty: everyone may do everything they are authenticated for).",
    "admin": "The admin API (HTTP/JSON on localhost; `edgeq queue`, `edgeq top`).",
    "admin.listen": "`HOST:PORT` of the admin API. `--admin` overrides it.",
    "admin.token": "Bearer token; empty: a random one is written to `DATA_DIR/admin.json` "
                   "(mode 0640) at the first start and kept across restarts.",
    "admin.users": "Users of the password file who may also use the admin API with HTTP Basic "
                   "auth (`edgeq top --user NAME`).",
    "admin.enabled": "Serve the admin API at all.",
    "admin.request_timeout": "Seconds a client has to send a whole request (headers and body) "
                             "and to read the answer; an idle or slow connection is closed "
                             "(408 when part of a request came).",
    "admin.max_connections": "Open admin connections at most; one more is answered 503 and "
                             "closed.",
    "admin.history": "Seconds of per-queue history (depth, lag, in/s, out/s) kept in memory "
                     "for `edgeq top` and `GET /api/v1/history` (0: none).",
    "admin.history_interval": "Seconds between two history samples; the in/s and out/s of a "
                              "sample are averages over this interval.",
    "admin.history_queues": "Queues that get a history at most (20 bytes a queue and sample: "
                            "3.6 KB a queue at the defaults); more get none.",
    "admin.metrics_queues": "Queues with their own series in `/metrics` at most, the oldest "
                            "first (configured queues before template instances); "
                            "`edgeq_metrics_queues_left_out` counts the others.",
    "appliance": "Raspberry Pi status LED and button (gpiozero).",
    "appliance.status_led_pin": "BCM pin of the status LED (unset: no LED).",
    "appliance.button_pin": "BCM pin of the button (unset: no button).",
    "appliance.long_press_seconds": "Hold time that turns a press into a clean shutdown.",
    "appliance.backlog_threshold": "Total queued messages above which the LED shows `backlog`.",
    "queues": "Durable queues (array of tables; docs/queues.md).",
    "queues.filter": "Topic filter whose messages the queue stores (wildcards allowed).",
    "queues.name": "Queue name for `$queue/<name>`, matching `[0-9A-Za-z][-.0-9A-Za-z_]*`; "
                   "defaults to the filter.",
    "queues.dispatch": "`round_robin`, `least_inflight`, `random` or `sticky`.",
    "queues.last_value_key": "Makes it a last-value queue: `user_property:NAME`, "
                             "`topic_level:N`, `json:PATH` or `client_id`; alternatives "
                             "joined by `|` are tried in order.",
    "queues.template": "One queue per concrete topic of a wildcard filter, created on first "
                       "publish or subscribe.",
    "queues.max_messages": "Hard limit on stored messages.",
    "queues.max_bytes": "Hard limit on stored payload and topic bytes.",
    "queues.ttl": "Seconds a message may wait (0: forever); MQTT 5 message expiry also applies.",
    "queues.overflow": "At a limit: `drop_oldest`, `reject_new` (5.0 PUBACK 0x97) or `block` "
                       "(stop reading from the producer until there is room).",
    "queues.max_inflight": "Unacknowledged messages per consumer (also capped by its 5.0 "
                           "Receive Maximum).",
    "queues.ack_timeout": "Seconds before an unacknowledged message is redelivered (0: never).",
    "queues.max_deliveries": "Deliveries before a message moves to the dead-letter queue "
                             "(0: unlimited).",
    "queues.redelivery_delay": "Seconds a message rejected by a consumer waits before it is "
                               "offered again, doubling with each delivery (0: at once).",
    "queues.redelivery_delay_max": "Upper bound of that delay, in seconds.",
    "queues.dead_letter_expired": "Move messages that expire (ttl or message expiry) to the "
                                  "dead-letter queue instead of deleting them.",
    "bridges": "Connections to upstream MQTT brokers (array of tables; docs/bridge.md). Local "
               "topics go up through a durable outbox queue per `out` rule, named "
               "`bridge.<name>.<filter>`; upstream topics come down into the broker.",
    "bridges.name": "Bridge name, matching `[0-9A-Za-z][-0-9A-Za-z_]*`; used in `$SYS` topics, "
                    "outbox queue names and the local client id `$bridge/<name>`.",
    "bridges.address": "`HOST:PORT` of the upstream broker.",
    "bridges.protocol": "`3.1.1` or `5.0`.",
    "bridges.client_id": "Client id at the upstream; empty: `<hostname>.<name>`.",
    "bridges.username": "User name at the upstream (empty: none).",
    "bridges.password": "Password at the upstream (empty: none).",
    "bridges.tls": "Connect with TLS, verifying the upstream's certificate and host name.",
    "bridges.cafile": "PEM CA bundle to verify the upstream with (empty: the system's CAs).",
    "bridges.certfile": "PEM client certificate (chain) for upstreams that require one.",
    "bridges.keyfile": "PEM private key of `certfile` (empty: in `certfile`).",
    "bridges.insecure": "Skip certificate and host name verification (tests and lab setups "
                        "only).",
    "bridges.try_private": "MQTT 3.1.1: announce a bridge (protocol level 0x84, as Mosquitto) so "
                           "that the upstream does not echo our own messages back; falls back "
                           "to plain 3.1.1 when refused.",
    "bridges.clean_start": "Start a new upstream session at each connection (the upstream then "
                           "forgets `in` messages sent while we were away).",
    "bridges.session_expiry": "MQTT 5.0: seconds the upstream keeps our session after a "
                              "disconnect.",
    "bridges.keepalive": "Keepalive in seconds; an upstream silent for 1.5 times as long is "
                         "given up and reconnected.",
    "bridges.max_inflight": "Outbox messages sent and not yet acknowledged by the upstream "
                            "(also capped by its 5.0 Receive Maximum).",
    "bridges.reconnect_min": "First reconnect delay in seconds; it doubles at each failure.",
    "bridges.reconnect_max": "Largest reconnect delay in seconds; each delay is drawn between "
                             "half and all of the current step (jitter).",
    "bridges.max_messages": "Outbox limit on stored messages, per `out` rule.",
    "bridges.max_bytes": "Outbox limit on stored payload and topic bytes, per `out` rule.",
    "bridges.overflow": "At an outbox limit: `drop_oldest` (keep the newest data, never slow "
                        "local producers), `reject_new` or `block` (as for queues; these hold "
                        "back local producers while the uplink is down).",
    "bridges.topics": "Topic rules (array of tables, like Mosquitto's `topic` lines).",
    "bridges.topics.pattern": "Topic filter, wildcards allowed.",
    "bridges.topics.direction": "`out` (local to upstream), `in` (upstream to local) or `both`.",
    "bridges.topics.qos": "`out`: QoS towards the upstream (0, or 1 for 1 and 2); `in`: QoS of "
                          "the upstream subscription.",
    "bridges.topics.local_prefix": "Prefix of the local topics: local filter = `local_prefix` "
                                   "+ `pattern`.",
    "bridges.topics.remote_prefix": "Prefix of the upstream topics: remote filter = "
                                    "`remote_prefix` + `pattern`.",
}

_SECTIONS: list[tuple[str, type[msgspec.Struct]]] = [
    ("", c.Config), ("listeners", c.Listener), ("mqtt", c.MqttSettings),
    ("storage", c.StorageSettings), ("auth", c.AuthSettings), ("admin", c.AdminSettings),
    ("appliance", c.ApplianceSettings), ("queues", c.QueueSpec), ("bridges", c.BridgeSpec),
    ("bridges.topics", c.BridgeTopic)]
_STRUCT_FIELDS = {"listeners", "mqtt", "storage", "auth", "admin", "appliance", "queues",
                  "bridges", "source"}
_ARRAYS = ("listeners", "queues", "bridges", "bridges.topics")

EXAMPLE = """\
data_dir = "/var/lib/edgeq"

[[listeners]]
address = "0.0.0.0:1883"

[[listeners]]
address = "0.0.0.0:8883"
kind = "tls"
certfile = "/etc/edgeq/tls/server.crt"
keyfile = "/etc/edgeq/tls/server.key"

[auth]
allow_anonymous = false
password_file = "/etc/edgeq/passwd"
acl_file = "/etc/edgeq/acl"

[[queues]]
filter = "images/+"
name = "ocr-jobs"
dispatch = "least_inflight"

[[queues]]
filter = "lights/+/commands"
template = true
last_value_key = "user_property:command_type|json:command_type"

[[bridges]]
name = "cloud"
address = "mqtt.example.com:8883"
protocol = "5.0"
tls = true
username = "site-7"
password = "secret"

[[bridges.topics]]
pattern = "sensors/#"
direction = "out"
remote_prefix = "sites/7/"

[[bridges.topics]]
pattern = "lights/+/commands"
direction = "in"
remote_prefix = "sites/7/"
"""


def fields_of(struct: type[msgspec.Struct]) -> list[msgspec.structs.FieldInfo]:
    return list(msgspec.structs.fields(struct))


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.default is not msgspec.NODEFAULT:
        value = field.default
    elif field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, (list, msgspec.Struct)):
        return "see below" if not isinstance(value, list) or value else "none"
    return f"`{msgspec.json.encode(value).decode()}`"


def render() -> str:
    out = ["# Configuration reference", "",
           "<!-- generated by `python -m gateway.configdoc`; a test checks it -->", "",
           "edgeq reads one TOML file (`edgeq serve --config FILE`; `/etc/edgeq/edgeq.toml` on "
           "the image). Without `--config` it uses an embedded default that listens on "
           "127.0.0.1:1883, stores under `./var/` and declares the smart-light command queue. "
           "Unknown keys are refused; every error names the file, the key and the fix. "
           "Command-line flags (`--listen`, `--data-dir`, `--admin`) override the file.", "",
           "## Example", "", "```toml", EXAMPLE.rstrip(), "```", ""]
    for section, struct in _SECTIONS:
        title = "Top level" if not section else (
            f"[[{section}]]" if section in _ARRAYS else f"[{section}]")
        out += [f"## {title}", ""]
        if section:
            out += [DESCRIPTIONS[section], ""]
        out += ["| key | default | meaning |", "|---|---|---|"]
        for field in fields_of(struct):
            if not section and field.name in _STRUCT_FIELDS:
                continue
            key = f"{section}.{field.name}" if section else field.name
            out.append(f"| `{field.name}` | {_default(field)} | {DESCRIPTIONS[key]} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
