# The device configuration: config.json on the board's filesystem, checked against SCHEMA.
#
# load() returns a plain dict with every default filled in, or raises ConfigError naming the
# key and what is wrong with it. The same module runs under CPython in tool.py, so a config
# is checked on the laptop before it is copied to a board. Keep it to json and plain Python.
import json

REQUIRED = object()
_NOTHING = object()


class ConfigError(ValueError):
    pass


# key: (type or tuple of types, default). None in a tuple of types means "may be null".
# A nested dict is a section. Defaults are what the docs promise (docs/device-firmware.md).
SCHEMA = {
    "device_id": ((str, None), None),
    "chip": (str, "esp32"),
    "wifi": {
        "ssid": (str, REQUIRED),
        "password": (str, ""),
        "hostname": ((str, None), None),
        "connect_timeout_ms": (int, 20000),
    },
    "gateway": {
        "host": (str, REQUIRED),
        "port": (int, 1883),
        "username": ((str, None), None),
        "password": ((str, None), None),
        "tls": (bool, False),
        "ca_file": ((str, None), None),
        "insecure": (bool, False),
        "keepalive_s": (int, 30),
        "timeout_ms": (int, 10000),
    },
    "topics": {
        "commands": (str, "$q/lights/{id}/commands"),
        "state": (str, "lights/{id}/state"),
        "status": (str, "lights/{id}/status"),
        "telemetry": (str, "lights/{id}/telemetry"),
        "update": ((str, None), None),
    },
    "led": {
        "driver": (str, "pwm"),
        "pins": (list, [25, 26, 27]),
        "pin": (int, 5),
        "count": (int, 1),
        "freq_hz": (int, 1000),
        "active_low": (bool, False),
    },
    "home_assistant": {
        "discovery": (bool, False),
        "prefix": (str, "homeassistant"),
    },
    "watchdog_ms": (int, 30000),
    "reconnect_min_ms": (int, 1000),
    "reconnect_max_ms": (int, 60000),
    "poll_ms": (int, 50),
    "state_save_ms": (int, 2000),
    "telemetry_s": (int, 60),
    "update_trial_s": (int, 300),
    "max_loops": (int, 0),
}

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def _type_ok(value, types):
    if not isinstance(types, tuple):
        types = (types,)
    for t in types:
        if t is None:
            if value is None:
                return True
        elif t is int:
            # bool is an int subclass in Python; true is not a port number
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif isinstance(value, t):
            return True
    return False


def _type_name(types):
    if not isinstance(types, tuple):
        types = (types,)
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             None: "null"}
    return " or ".join([names[t] for t in types])


def _merge(schema, given, prefix):
    if not isinstance(given, dict):
        raise ConfigError("%s: must be an object" % (prefix[:-1] or "config"))
    for key in given:
        if key not in schema:
            raise ConfigError("%s%s: unknown key" % (prefix, key))
    out = {}
    for key, spec in schema.items():
        value = given.get(key, _NOTHING)
        if isinstance(spec, dict):
            out[key] = _merge(spec, {} if value is _NOTHING else value, prefix + key + ".")
            continue
        types, default = spec
        if value is _NOTHING:
            if default is REQUIRED:
                raise ConfigError("%s%s: missing (required)" % (prefix, key))
            value = list(default) if isinstance(default, list) else default
        elif not _type_ok(value, types):
            raise ConfigError("%s%s: must be %s" % (prefix, key, _type_name(types)))
        out[key] = value
    return out


def _check_range(cfg, path, lo, hi):
    value = cfg
    for key in path.split("."):
        value = value[key]
    if not lo <= value <= hi:
        raise ConfigError("%s: must be from %d to %d, not %d" % (path, lo, hi, value))


def _check_values(cfg):
    dev = cfg["device_id"]
    if dev is not None and (not 1 <= len(dev) <= 64 or [c for c in dev if c not in _ID_CHARS]):
        raise ConfigError("device_id: use 1 to 64 letters, digits, '-' or '_' (it is part of "
                          "the MQTT client id and topics)")
    if not cfg["wifi"]["ssid"]:
        raise ConfigError("wifi.ssid: must not be empty")
    if not cfg["gateway"]["host"]:
        raise ConfigError("gateway.host: must not be empty")
    _check_range(cfg, "gateway.port", 1, 65535)
    _check_range(cfg, "gateway.keepalive_s", 5, 65535)
    _check_range(cfg, "wifi.connect_timeout_ms", 1000, 600000)
    if cfg["chip"] not in CHIPS:
        raise ConfigError('chip: must be "esp32", "esp32s3" or "esp32c3", not %s'
                          % json.dumps(cfg["chip"]))
    _check_tls(cfg["gateway"])
    for key in ("commands", "state", "status", "telemetry", "update"):
        topic = cfg["topics"][key]
        if topic is None:  # only topics.update may be null (no updates over MQTT)
            continue
        if "{id}" not in topic or "+" in topic or "#" in topic:
            raise ConfigError("topics.%s: must contain {id} and no wildcard" % key)
        _check_ascii(topic, "topics." + key)
    for key in ("username", "password"):
        if cfg["gateway"][key] is not None:
            _check_ascii(cfg["gateway"][key], "gateway." + key)
    _check_led(cfg["led"])
    prefix = cfg["home_assistant"]["prefix"]
    if not prefix or "+" in prefix or "#" in prefix:
        raise ConfigError("home_assistant.prefix: must be a topic without wildcards")
    if cfg["watchdog_ms"] != 0:
        _check_range(cfg, "watchdog_ms", 5000, 600000)
    _check_range(cfg, "gateway.timeout_ms", 100, 600000)
    if cfg["watchdog_ms"] and cfg["gateway"]["timeout_ms"] >= cfg["watchdog_ms"]:
        raise ConfigError("gateway.timeout_ms: must be below watchdog_ms (%d), so the light "
                          "notices first" % cfg["watchdog_ms"])
    _check_range(cfg, "state_save_ms", 0, 3600000)
    _check_range(cfg, "telemetry_s", 0, 86400)
    _check_range(cfg, "update_trial_s", 1, 86400)
    _check_range(cfg, "reconnect_min_ms", 10, 3600000)
    _check_range(cfg, "reconnect_max_ms", cfg["reconnect_min_ms"], 3600000)
    _check_range(cfg, "poll_ms", 1, 1000)
    _check_range(cfg, "max_loops", 0, 2147483647)


def _check_tls(gw):
    if gw["ca_file"] and not gw["tls"]:
        raise ConfigError("gateway.ca_file: set only with gateway.tls = true")
    if gw["insecure"] and not gw["tls"]:
        raise ConfigError("gateway.insecure: set only with gateway.tls = true")
    if gw["insecure"] and gw["ca_file"]:
        raise ConfigError("gateway.insecure: set either gateway.ca_file or gateway.insecure, "
                          "not both")
    if gw["tls"] and not gw["ca_file"] and not gw["insecure"]:
        raise ConfigError("gateway.ca_file: required with gateway.tls (or set gateway.insecure "
                          "= true to skip checking the gateway's certificate)")


def _check_ascii(text, path):
    # umqtt.simple 1.3.4 sends a string's length in characters, not bytes.
    if len(text.encode()) != len(text):
        raise ConfigError("%s: must be plain ASCII" % path)


def _check_led(led):
    if led["driver"] == "pwm":
        pins = led["pins"]
        if len(pins) != 3 or [p for p in pins if not _type_ok(p, int) or not 0 <= p <= 48]:
            raise ConfigError("led.pins: must be three GPIO numbers [red, green, blue]")
        if not 1 <= led["freq_hz"] <= 40000:
            raise ConfigError("led.freq_hz: must be from 1 to 40000")
    elif led["driver"] == "neopixel":
        if not 0 <= led["pin"] <= 48:
            raise ConfigError("led.pin: must be a GPIO number")
        if not 1 <= led["count"] <= 1024:
            raise ConfigError("led.count: must be from 1 to 1024")
    else:
        raise ConfigError('led.driver: must be "pwm" or "neopixel", not "%s"' % led["driver"])


# GPIOs per chip: those it has, those that can only be inputs, and those wired to the SPI flash
# on every module (using one of those crashes the board). ESP32-S3 modules with octal PSRAM
# also use GPIO 33-37; that is not checked, since the module, not the chip, decides.
CHIPS = {
    "esp32": ("ESP32", [p for p in range(40) if p not in (20, 24, 28, 29, 30, 31)],
              range(34, 40), range(6, 12)),
    "esp32s3": ("ESP32-S3", [p for p in range(49) if not 22 <= p <= 25], (), range(26, 33)),
    "esp32c3": ("ESP32-C3", list(range(22)), (), range(12, 18)),
}


def pin_problem(chip, gpio):
    """Why `gpio` cannot drive an LED on `chip` (a key of CHIPS), or None when it can."""
    name, gpios, input_only, flash = CHIPS[chip]
    if gpio not in gpios:
        return "the %s has no GPIO%d" % (name, gpio)
    if gpio in input_only:
        return "GPIO%d is input-only on the %s (it cannot drive an LED)" % (gpio, name)
    if gpio in flash:
        return "GPIO%d is wired to the flash chip on the %s" % (gpio, name)
    return None


def check_pins(cfg, chip=None):
    """Raise ConfigError when an LED pin cannot be an output on `chip` (default: cfg's chip)."""
    led = cfg["led"]
    key, pins = ("led.pins", led["pins"]) if led["driver"] == "pwm" else ("led.pin", [led["pin"]])
    for gpio in pins:
        problem = pin_problem(chip or cfg["chip"], gpio)
        if problem:
            raise ConfigError("%s: %s" % (key, problem))


def board_chip(machine_name, default):
    """The chip named in sys.implementation._machine ("... with ESP32S3"), else `default`."""
    tail = machine_name.rsplit(" with ", 1)[-1].lower().replace("-", "")
    return tail if tail in CHIPS else default


def parse(text):
    """The checked config, with defaults, from the text of a config.json."""
    try:
        given = json.loads(text)
    except ValueError:
        raise ConfigError("not valid JSON")
    cfg = _merge(SCHEMA, given, "")
    _check_values(cfg)
    return cfg


def load(path="/config.json"):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("%s: cannot read it; copy one with: edgeq device config" % path)
    try:
        return parse(text)
    except ConfigError as e:
        raise ConfigError("%s: %s" % (path, e))


def mac_device_id(unique_id):
    """The device id a board takes when the config has none: light- and its MAC's last 3 bytes."""
    return "light-" + "".join(["%02x" % b for b in unique_id[-3:]])


def topic(cfg, key):
    return cfg["topics"][key].replace("{id}", cfg["device_id"])
