"""The last-value queue pattern: an offline device gets only the final command per key."""

from __future__ import annotations

from tests.queues.conftest import HarnessFactory, Worker, spec

COLOR = [("command_type", "set-color")]
FIRMWARE = [("command_type", "update-firmware")]


def lights(**fields: object) -> object:
    return spec("lights/light-123/commands", last_value_key="user_property:command_type",
                **fields)


def test_blue_red_green_gives_only_green(make_engine: HarnessFactory) -> None:
    h = make_engine(lights())
    for color in ("Blue", "Red", "Green"):
        h.publish("lights/light-123/commands", color, user_property=COLOR)
    assert [r[0] for r in h.rows("lights/light-123/commands")] == [b"Green"]
    light = Worker("light-123")
    h.engine.subscribe("$q/lights/light-123/commands", light, 1)
    assert light.payloads == [b"Green"]
    stats = h.stats("lights/light-123/commands")
    assert (stats.kind, stats.replaced, stats.depth) == ("last_value", 2, 1)


def test_two_keys_keep_two_values(make_engine: HarnessFactory) -> None:
    h = make_engine(lights())
    h.publish("lights/light-123/commands", "Blue", user_property=COLOR)
    h.publish("lights/light-123/commands", "v1", user_property=FIRMWARE)
    h.publish("lights/light-123/commands", "Green", user_property=COLOR)
    h.publish("lights/light-123/commands", "v2", user_property=FIRMWARE)
    light = Worker("light-123")
    h.engine.subscribe("$q/lights/light-123/commands", light, 1)
    assert light.payloads == [b"Green", b"v2"]


def test_a_message_without_the_key_is_kept_and_never_replaced(
        make_engine: HarnessFactory) -> None:
    h = make_engine(lights())
    h.publish("lights/light-123/commands", "reboot")
    h.publish("lights/light-123/commands", "Blue", user_property=COLOR)
    h.publish("lights/light-123/commands", "reboot")
    h.publish("lights/light-123/commands", "Green", user_property=COLOR)
    light = Worker("light-123")
    h.engine.subscribe("$q/lights/light-123/commands", light, 1)
    assert light.payloads == [b"reboot", b"reboot", b"Green"]


def test_a_value_in_flight_is_not_recalled(make_engine: HarnessFactory) -> None:
    h = make_engine(lights())
    light = Worker("light-123")
    h.engine.subscribe("$q/lights/light-123/commands", light, 1)
    h.publish("lights/light-123/commands", "Blue", user_property=COLOR)
    h.publish("lights/light-123/commands", "Red", user_property=COLOR)
    h.publish("lights/light-123/commands", "Green", user_property=COLOR)
    assert light.payloads == [b"Blue", b"Red", b"Green"]  # online: each was sent at once
    h.engine.detach(light)
    h.settle()
    # Back in the queue: the older values are superseded by the newest one.
    again = Worker("light-123")
    h.engine.subscribe("$q/lights/light-123/commands", again, 1)
    assert again.payloads == [b"Green"]


def test_json_payload_key_for_mqtt_311_producers(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("lights/+/commands", last_value_key="json:command.type"))
    for color in ("Blue", "Green"):
        h.publish("lights/l1/commands", f'{{"command": {{"type": "set-color"}}, "c": "{color}"}}')
    light = Worker("l1")
    h.engine.subscribe("$q/lights/+/commands", light, 1)
    assert light.payloads == [b'{"command": {"type": "set-color"}, "c": "Green"}']


def test_topic_level_key_keeps_one_value_per_device(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("state/#", last_value_key="topic_level:1"))
    h.publish("state/a/temp", "1")
    h.publish("state/b/temp", "2")
    h.publish("state/a/humidity", "3")
    w = Worker("w")
    h.engine.subscribe("$q/state/#", w, 1)
    assert w.payloads == [b"2", b"3"]


def test_last_values_survive_a_restart(make_engine: HarnessFactory) -> None:
    h = make_engine(lights(), window=2)
    h.publish("lights/light-123/commands", "keyless")
    for color in ("Blue", "Red"):
        h.publish("lights/light-123/commands", color, user_property=COLOR)
    h.publish("lights/light-123/commands", "v1", user_property=FIRMWARE)
    engine = h.restart()
    h.publish("lights/light-123/commands", "Green", user_property=COLOR)  # replaces Red
    h.publish("lights/light-123/commands", "v2", user_property=FIRMWARE)  # on disk: replaces v1
    light = Worker("light-123")
    engine.subscribe("$q/lights/light-123/commands", light, 1)
    h.ack_all(light)
    assert light.payloads == [b"keyless", b"Green", b"v2"]


NESTED = b"[" * 100_000


def test_a_payload_nested_too_deep_is_kept_without_a_key_and_counted(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("lights/+/commands", last_value_key="json:command.type"))
    h.publish("lights/l1/commands", '{"command": {"type": "set-color"}, "c": "Blue"}')
    h.publish("lights/l1/commands", NESTED)
    h.publish("lights/l1/commands", b'{"command": {"type": "set-color"}, "c": "Green"}')
    light = Worker("l1")
    h.engine.subscribe("$q/lights/+/commands", light, 1)
    assert light.payloads == [NESTED, b'{"command": {"type": "set-color"}, "c": "Green"}']
    assert h.stats("lights/+/commands").key_errors == 1
