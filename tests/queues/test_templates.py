"""Per-device queues from a template, and how consumer filters name queues."""

from __future__ import annotations

from tests.queues.conftest import HarnessFactory, Worker, spec


def fleet() -> object:
    return spec("lights/+/commands", template=True,
                last_value_key="user_property:command_type", max_messages=10)


def test_an_instance_is_created_on_first_publish(make_engine: HarnessFactory) -> None:
    h = make_engine(fleet())
    h.publish("lights/l1/commands", "on")
    h.publish("lights/l2/commands", "off")
    kinds = {s.name: s.kind for s in h.engine.stats()}
    assert kinds == {"lights/+/commands": "template", "lights/l1/commands": "instance",
                     "lights/l2/commands": "instance"}
    assert [r[0] for r in h.rows("lights/l1/commands")] == [b"on"]
    device = Worker("l1")
    assert h.engine.subscribe("$q/lights/l1/commands", device, 1) == 0
    assert device.payloads == [b"on"]


def test_an_instance_inherits_the_template_settings(make_engine: HarnessFactory) -> None:
    h = make_engine(fleet())
    for color in ("Blue", "Green"):
        h.publish("lights/l1/commands", color, user_property=[("command_type", "set-color")])
    show = h.engine.show("lights/l1/commands")
    assert show["settings"]["max_messages"] == 10
    assert show["parent"] == "lights/+/commands"
    assert [r[0] for r in h.rows("lights/l1/commands")] == [b"Green"]


def test_a_device_may_subscribe_before_any_command(make_engine: HarnessFactory) -> None:
    h = make_engine(fleet())
    device = Worker("l9")
    assert h.engine.subscribe("$q/lights/l9/commands", device, 1) == 0
    h.publish("lights/l9/commands", "on")
    assert device.payloads == [b"on"]


def test_instances_survive_a_restart(make_engine: HarnessFactory) -> None:
    h = make_engine(fleet())
    h.engine.subscribe("$q/lights/l7/commands", Worker("l7"), 1)
    h.publish("lights/l1/commands", "on")
    engine = h.restart()
    names = {s.name for s in engine.stats()}
    assert {"lights/l1/commands", "lights/l7/commands"} <= names
    device = Worker("l1")
    engine.subscribe("$q/lights/l1/commands", device, 1)
    assert device.payloads == [b"on"]


def test_the_template_itself_cannot_be_consumed(make_engine: HarnessFactory) -> None:
    h = make_engine(fleet())
    assert h.engine.subscribe("$q/lights/+/commands", Worker("w"), 1) == 0x8F
    assert h.engine.subscribe("$q/lights/x/status", Worker("w"), 1) == 0x8F


def test_instances_dead_letter_into_the_template_dead_letter_queue(
        make_engine: HarnessFactory) -> None:
    h = make_engine(spec("lights/+/commands", template=True, max_deliveries=1))
    device = Worker("l1")
    h.engine.subscribe("$q/lights/l1/commands", device, 1)
    h.publish("lights/l1/commands", "bad")
    h.engine.detach(device)
    h.settle()
    assert [r[0] for r in h.rows("$dlq/lights/+/commands")] == [b"bad"]


def test_unknown_queue_filters_are_refused(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("jobs", name="orders"))
    w = Worker("w")
    assert h.engine.subscribe("$q/other", w, 1) == 0x8F
    assert h.engine.subscribe("$queue/unknown", w, 1) == 0x8F
    assert h.engine.subscribe("$queue/orders/not-its-filter", w, 1) == 0x8F
    assert h.engine.subscribe("$queue/bad name!/x", w, 1) == 0x8F
    assert h.engine.subscribe("$q/jobs", w, 1) == 0
    assert h.engine.subscribe("$queue/orders", w, 1) == 0
    assert h.engine.subscribe("$queue/orders/jobs", w, 1) == 0
    assert h.engine.is_queue_filter("$queue/orders") and h.engine.is_queue_filter("$q/jobs")
    assert not h.engine.is_queue_filter("jobs")


def test_named_form_creates_a_persistent_queue(make_engine: HarnessFactory) -> None:
    h = make_engine()
    w = Worker("w")
    assert h.engine.subscribe("$queue/ocr/images/+", w, 1) == 0  # EMQX 6.1 style
    h.publish("images/cam1", "jpeg")
    assert w.payloads == [b"jpeg"]
    h.engine.detach(w)
    engine = h.restart()
    again = Worker("again")
    assert engine.subscribe("$queue/ocr", again, 1) == 0
    assert again.payloads == [b"jpeg"]
    assert next(s for s in engine.stats() if s.name == "ocr").filter == "images/+"


def test_a_publish_reaches_every_matching_queue(make_engine: HarnessFactory) -> None:
    h = make_engine(spec("images/+"), spec("images/#", name="archive"))
    assert h.publish("images/cam1", "x").matched == 2
    assert h.publish("other", "x").matched == 0
