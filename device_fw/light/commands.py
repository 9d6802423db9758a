# The light's command schema: JSON objects that name their command in "command_type".
#
#   {"command_type": "set-color", "color": "green"}       a name in COLORS, "#rrggbb" or [r, g, b]
#   {"command_type": "set-brightness", "brightness": 40}  percent, 0 to 100
#   {"command_type": "power", "power": "off"}             "on", "off" or "toggle"
#   {"command_type": "set", "power": "on", "brightness": 40, "color": [255, 128, 0]}
#       any of power ("on"/"off"), brightness and color at once (what Home Assistant sends)
#
# An "id" (a string) is echoed in the state as "last_command_id"; the light applies an id once,
# so a redelivered command does not act twice. It is optional, except for "toggle", which is the
# one command that a second application would undo. Other keys are ignored.
# "command_type" is in the JSON (not only in an MQTT 5 user property) so that a last-value queue
# keyed with json:command_type works for MQTT 3.1.1 producers too.
# parse() raises CommandError for anything else; the light then keeps its state.
# Plain Python: CPython imports this module too (tool.py checks a command before sending it).
import json

COLORS = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
    "warm-white": (255, 180, 107),
    "yellow": (255, 255, 0),
    "orange": (255, 128, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "purple": (128, 0, 255),
}

COMMAND_TYPES = ("set-color", "set-brightness", "power")
MAX_PAYLOAD = 512


class CommandError(ValueError):
    pass


def initial_state():
    """What the light shows at its first power-up, before any command or saved state."""
    return {"power": "on", "color": "#ffffff", "brightness": 100}


def valid_state(state):
    """Whether `state` (e.g. read back from flash) is a state this module could have made."""
    if not isinstance(state, dict) or state.get("power") not in ("on", "off"):
        return False
    b = state.get("brightness")
    if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= 100:
        return False
    try:
        return hex_color(parse_color(state.get("color"))) == state["color"]
    except CommandError:
        return False


def describe_state(state):
    return "%s %s %d%%" % (state["power"], state["color"], state["brightness"])


def hex_color(rgb):
    return "#%02x%02x%02x" % rgb


def parse_color(value):
    """(r, g, b) from a colour name, "#rrggbb" or [r, g, b]."""
    if isinstance(value, str):
        name = value.lower()
        if name in COLORS:
            return COLORS[name]
        if len(name) == 7 and name[0] == "#":
            try:
                return (int(name[1:3], 16), int(name[3:5], 16), int(name[5:7], 16))
            except ValueError:
                pass
        raise CommandError("unknown colour %s (use a name, #rrggbb or [r, g, b])"
                           % json.dumps(value))
    if isinstance(value, list) and len(value) == 3:
        for c in value:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 255:
                raise CommandError("colour components must be integers from 0 to 255")
        return (value[0], value[1], value[2])
    raise CommandError('"color" must be a name, "#rrggbb" or [r, g, b]')


def _brightness(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError('"brightness" must be a number from 0 to 100')
    if not 0 <= value <= 100:
        raise CommandError('"brightness" must be from 0 to 100')
    return int(value + 0.5)


def too_large(size):
    return "command of %d bytes is too large (the limit is %d)" % (size, MAX_PAYLOAD)


def parse(payload):
    """The command in a message payload (bytes or str), as a dict with a checked value."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(too_large(len(payload)))
    try:
        obj = json.loads(payload)
    except ValueError:
        raise CommandError("payload is not JSON")
    if not isinstance(obj, dict):
        raise CommandError("payload is not a JSON object")
    kind = obj.get("command_type")
    cmd = {"command_type": kind, "id": obj.get("id")}
    if cmd["id"] is not None and not isinstance(cmd["id"], str):
        raise CommandError('"id" must be a string')
    if kind == "set-color":
        cmd["color"] = hex_color(parse_color(obj.get("color")))
    elif kind == "set-brightness":
        cmd["brightness"] = _brightness(obj.get("brightness"))
    elif kind == "power":
        power = obj.get("power")
        if power not in ("on", "off", "toggle"):
            raise CommandError('"power" must be "on", "off" or "toggle"')
        if power == "toggle" and cmd["id"] is None:
            raise CommandError('"toggle" needs an "id" (so a redelivered toggle acts once)')
        cmd["power"] = power
    elif kind == "set":
        _parse_set(obj, cmd)
    elif kind is None:
        raise CommandError('no "command_type"')
    else:
        raise CommandError("unknown command_type %s" % json.dumps(kind))
    return cmd


def _parse_set(obj, cmd):
    if "power" in obj:
        if obj["power"] not in ("on", "off"):
            raise CommandError('"power" in "set" must be "on" or "off"')
        cmd["power"] = obj["power"]
    if "brightness" in obj:
        cmd["brightness"] = _brightness(obj["brightness"])
    if "color" in obj:
        cmd["color"] = hex_color(parse_color(obj["color"]))
    if len(cmd) == 2:
        raise CommandError('"set" needs "power", "brightness" or "color"')


def apply(state, cmd):
    """The state after a parsed command (a new dict; `state` is left alone)."""
    new = dict(state)
    if cmd.get("power") == "toggle":
        new["power"] = "off" if state["power"] == "on" else "on"
        return new
    for key in ("power", "brightness", "color"):
        if key in cmd:
            new[key] = cmd[key]
    return new


def output_rgb(state):
    """The (r, g, b) levels, 0 to 255, that the LED shows for a state."""
    if state["power"] != "on":
        return (0, 0, 0)
    c = state["color"]
    b = state["brightness"]
    rgb = (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16))
    return ((rgb[0] * b + 50) // 100, (rgb[1] * b + 50) // 100, (rgb[2] * b + 50) // 100)


def describe(cmd):
    kind = cmd["command_type"]
    if kind == "set-color":
        return "set-color %s" % cmd["color"]
    if kind == "set-brightness":
        return "set-brightness %d" % cmd["brightness"]
    if kind == "power":
        return "power %s" % cmd["power"]
    return "set " + ", ".join(["%s %s" % (k, cmd[k]) for k in ("power", "brightness", "color")
                               if k in cmd])
