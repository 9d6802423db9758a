"""The status LED and button with gpiozero's mock pins (no Pi needed)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.appliance.gpio import PATTERNS, GpioPanel, LedState, led_state, open_panel

LED_PIN, BUTTON_PIN = 17, 27
SCALE = 0.5  # patterns run at half their real durations


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def open_test_panel(factory: MockFactory, **kwargs: Any) -> GpioPanel:
    panel = open_panel(led_pin=LED_PIN, button_pin=BUTTON_PIN, long_press_seconds=0.2,
                       pin_factory=factory, time_scale=SCALE, **kwargs)
    assert isinstance(panel, GpioPanel)
    return panel


def observed_steps(factory: MockFactory, seconds: float) -> list[tuple[bool, float]]:
    """The LED's (lit, duration) steps over `seconds`, without the first and last partial ones."""
    pin = factory.pin(LED_PIN)
    pin.clear_states()
    time.sleep(seconds)
    states = pin.states
    # states[i + 1].timestamp is how long states[i].state lasted.
    return [(bool(states[i].state), states[i + 1].timestamp) for i in range(1, len(states) - 1)]


def expected_steps(state: LedState, count: int) -> list[tuple[bool, float]]:
    steps = PATTERNS[state].steps
    return [(lit, seconds * SCALE) for lit, seconds in steps] * (count // len(steps) + 2)


def assert_pattern(factory: MockFactory, state: LedState, seconds: float) -> None:
    """The LED went through `state`'s steps (in some phase), each lasting about as long."""
    seen = observed_steps(factory, seconds)
    assert len(seen) >= len(PATTERNS[state].steps), seen
    expected = expected_steps(state, len(seen))
    phases = [expected[i:i + len(seen)] for i in range(len(PATTERNS[state].steps))]
    assert any(all(s[0] == e[0] and math.isclose(s[1], e[1], rel_tol=0.3, abs_tol=0.03)
                   for s, e in zip(seen, phase, strict=True)) for phase in phases), \
        f"saw {seen}, expected a phase of {expected}"


def test_starting_is_a_fast_blink(factory: MockFactory) -> None:
    panel = open_test_panel(factory)
    assert_pattern(factory, LedState.STARTING, 0.4)
    panel.close()


def test_serving_is_steady_on(factory: MockFactory) -> None:
    panel = open_test_panel(factory)
    panel.show(LedState.SERVING)
    pin = factory.pin(LED_PIN)
    pin.clear_states()
    time.sleep(0.3)
    assert pin.state and len(pin.states) == 1  # no change at all
    panel.close()


def test_backlog_is_a_slow_blink(factory: MockFactory) -> None:
    panel = open_test_panel(factory)
    panel.show(LedState.BACKLOG)
    assert_pattern(factory, LedState.BACKLOG, 1.8)
    panel.close()


def test_storage_error_is_a_double_blink(factory: MockFactory) -> None:
    panel = open_test_panel(factory)
    panel.show(LedState.STORAGE_ERROR)
    assert_pattern(factory, LedState.STORAGE_ERROR, 1.6)
    panel.close()


def test_patterns_are_distinct() -> None:
    assert len({p.steps for p in PATTERNS.values()}) == len(LedState)


def test_led_state_from_broker_health() -> None:
    assert led_state(storage_ok=True, backlog=10, threshold=100) is LedState.SERVING
    assert led_state(storage_ok=True, backlog=101, threshold=100) is LedState.BACKLOG
    assert led_state(storage_ok=True, backlog=10**6, threshold=None) is LedState.SERVING
    assert led_state(storage_ok=False, backlog=101, threshold=100) is LedState.STORAGE_ERROR


def test_close_switches_the_led_off(factory: MockFactory) -> None:
    panel = open_test_panel(factory)
    panel.show(LedState.SERVING)
    panel.close()
    assert not factory.pin(LED_PIN).state


def press(factory: MockFactory, seconds: float) -> None:
    button = factory.pin(BUTTON_PIN)
    button.drive_low()
    time.sleep(seconds)
    button.drive_high()
    time.sleep(0.05)


def test_short_press_asks_for_status(factory: MockFactory) -> None:
    calls: list[str] = []
    panel = open_test_panel(factory, on_status=lambda: calls.append("status"),
                            on_shutdown=lambda: calls.append("shutdown"))
    press(factory, 0.05)
    assert calls == ["status"]
    panel.close()


def test_long_press_shuts_down_and_only_that(factory: MockFactory) -> None:
    calls: list[str] = []
    panel = open_test_panel(factory, on_status=lambda: calls.append("status"),
                            on_shutdown=lambda: calls.append("shutdown"))
    press(factory, 0.45)
    assert calls == ["shutdown"]
    panel.close()


def test_button_callbacks_run_on_the_event_loop(factory: MockFactory) -> None:
    async def main() -> list[str]:
        names: list[str] = []
        done = asyncio.Event()

        def shutdown() -> None:
            names.append(threading.current_thread().name)
            done.set()

        panel = open_test_panel(factory, on_shutdown=shutdown, loop=asyncio.get_running_loop())
        await asyncio.to_thread(press, factory, 0.45)
        await asyncio.wait_for(done.wait(), 2)
        panel.close()
        return names

    assert asyncio.run(main()) == [threading.main_thread().name]


def test_without_gpio_one_line_and_no_ops(monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with caplog.at_level(logging.DEBUG):
        panel = open_panel(led_pin=LED_PIN, button_pin=BUTTON_PIN)
    assert not panel.active
    panel.show(LedState.SERVING)
    panel.close()
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("GPIO status LED and button disabled: ")


def test_no_pins_configured_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        panel = open_panel(led_pin=None, button_pin=None)
    assert not panel.active
    assert caplog.records == []


def test_led_without_button(factory: MockFactory) -> None:
    panel = open_panel(led_pin=LED_PIN, button_pin=None, pin_factory=factory)
    assert isinstance(panel, GpioPanel) and panel.button is None
    panel.show(LedState.SERVING)
    assert factory.pin(LED_PIN).state
    panel.close()
