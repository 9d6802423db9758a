# Home Assistant MQTT discovery (home_assistant.discovery = true): after every connect the light
# publishes, retained, the description of itself that Home Assistant reads from
# <prefix>/light/<device_id>/config. It uses Home Assistant's "template" light schema, so Home
# Assistant speaks the light's own JSON: it renders command_on_template into a "set" command
# (power, brightness and colour at once) and reads the retained state with the *_template
# entries. Availability is the status topic: "online" is available, anything else (offline,
# a hardware-error report) is not. Plain Python: the templates are Jinja2, rendered by Home
# Assistant, never on the board.
from light import __version__

COMMAND_ON = (
    '{"command_type": "set", "power": "on"'
    '{% if brightness is defined %}, "brightness": {{ (brightness / 2.55) | round | int }}'
    '{% endif %}'
    '{% if red is defined and green is defined and blue is defined %}'
    ', "color": [{{ red }}, {{ green }}, {{ blue }}]{% endif %}}')
COMMAND_OFF = '{"command_type": "set", "power": "off"}'


def topic(prefix, device_id):
    return "%s/light/%s/config" % (prefix, device_id)


def config(device_id, chip, topics):
    """The discovery document; `topics` maps commands/state/status to the light's topics."""
    commands = topics["commands"]
    if commands.startswith("$q/"):  # the light consumes its queue; senders publish to the topic
        commands = commands[3:]
    return {
        "name": None,
        "unique_id": "edgeq-" + device_id,
        "schema": "template",
        "command_topic": commands,
        "state_topic": topics["state"],
        "availability_topic": topics["status"],
        "availability_template": "{{ 'online' if value == 'online' else 'offline' }}",
        "command_on_template": COMMAND_ON,
        "command_off_template": COMMAND_OFF,
        "state_template": "{{ value_json.power }}",
        "brightness_template": "{{ (value_json.brightness * 2.55) | round | int }}",
        "red_template": "{{ value_json.color[1:3] | int(base=16) }}",
        "green_template": "{{ value_json.color[3:5] | int(base=16) }}",
        "blue_template": "{{ value_json.color[5:7] | int(base=16) }}",
        "qos": 1,
        "device": {"identifiers": ["edgeq-" + device_id], "name": device_id,
                   "manufacturer": "edgeq", "model": "smart light (%s)" % chip,
                   "sw_version": __version__},
    }
