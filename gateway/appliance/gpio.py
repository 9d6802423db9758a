"""The status LED and the button on the Pi's GPIO header (gpiozero).

Wiring (BCM pin numbers, as in the `[appliance]` config section):

* **LED**: GPIO pin → 330 Ω resistor → LED anode; LED cathode → GND. The pin drives it high to
  light it.
* **Button**: a momentary push button between the GPIO pin and GND; the pin's internal pull-up
  holds it high, pressing pulls it low. No resistor needed.

The LED tells the broker's state at a glance (see `PATTERNS`): fast blink while starting, steady
on while serving, slow blink when the queue backlog is above the threshold, double blink on a
storage error. A short press of the button calls `on_status` (log and `$SYS` a status report); a
press held for `long_press_seconds` calls `on_shutdown` (a clean shutdown) and nothing else.

On a machine without GPIO (a laptop, CI, a Pi without permission on /dev/gpiochip*),
`open_panel()` logs one line and returns a `NullPanel` whose methods do nothing. This module
knows nothing about MQTT; callbacks are plain functions, run on the event loop when one is given.
"""

from __future__ import annotations

import enum
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# gpiozero is imported only when a pin is configured: importing it costs ~50 ms here and several
# times that on a Pi, which counts against start-to-READY.

log = logging.getLogger(__name__)

Callback = Callable[[], object]


class LedState(enum.StrEnum):
    """What the broker is doing, as far as the LED is concerned."""

    STARTING = "starting"
    SERVING = "serving"
    BACKLOG = "backlog"
    STORAGE_ERROR = "storage_error"


@dataclass(frozen=True)
class Pattern:
    """An LED pattern: `(lit, seconds)` steps repeated forever. A single step means steady."""

    steps: tuple[tuple[bool, float], ...]
    description: str


PATTERNS: dict[LedState, Pattern] = {
    LedState.STARTING: Pattern(((True, 0.1), (False, 0.1)),
                               "fast blink: 0.1 s on, 0.1 s off (5 flashes a second)"),
    LedState.SERVING: Pattern(((True, 0.0),), "steady on"),
    LedState.BACKLOG: Pattern(((True, 1.0), (False, 1.0)),
                              "slow blink: 1 s on, 1 s off"),
    LedState.STORAGE_ERROR: Pattern(((True, 0.15), (False, 0.15), (True, 0.15), (False, 1.0)),
                                    "double blink: two short flashes, then 1 s dark"),
}


def led_state(*, storage_ok: bool, backlog: int, threshold: int | None) -> LedState:
    """The state to show once started: storage errors win, then a backlog above `threshold`
    (None disables the backlog state), else serving."""
    if not storage_ok:
        return LedState.STORAGE_ERROR
    if threshold is not None and backlog > threshold:
        return LedState.BACKLOG
    return LedState.SERVING


class StatusLed:
    """A gpiozero `LED` showing one `LedState` at a time; blinking runs in a daemon thread."""

    def __init__(self, pin: int, *, pin_factory: Any = None, time_scale: float = 1.0) -> None:
        """`time_scale` shortens or stretches every pattern (tests use < 1)."""
        from gpiozero import LED

        self._led = LED(pin, pin_factory=pin_factory)
        self._scale = time_scale
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state: LedState | None = None

    def show(self, state: LedState) -> None:
        """Switch to `state`'s pattern (no-op if it is already showing)."""
        with self._lock:
            if state == self.state:
                return
            self._stop_pattern()
            self.state = state
            steps = PATTERNS[state].steps
            if len(steps) == 1:
                self._led.value = steps[0][0]
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(steps, self._stop),
                                            name=f"status-led-{state}", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop blinking, switch the LED off and release the pin."""
        with self._lock:
            self._stop_pattern()
            self.state = None
            self._led.off()
            self._led.close()

    def _stop_pattern(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, steps: tuple[tuple[bool, float], ...], stop: threading.Event) -> None:
        while True:
            for lit, seconds in steps:
                self._led.value = lit
                if stop.wait(seconds * self._scale):
                    return


class StatusButton:
    """A gpiozero `Button`: a short press calls `on_status`, a long press `on_shutdown`."""

    def __init__(self, pin: int, *, long_press_seconds: float, on_status: Callback,
                 on_shutdown: Callback, pin_factory: Any = None) -> None:
        from gpiozero import Button

        self._on_status = on_status
        self._on_shutdown = on_shutdown
        self._held = False
        self._button = Button(pin, pull_up=True, hold_time=long_press_seconds,
                              pin_factory=pin_factory)
        self._button.when_pressed = self._pressed
        self._button.when_held = self._long_press
        self._button.when_released = self._released

    def close(self) -> None:
        """Release the pin."""
        self._button.close()

    def _pressed(self) -> None:
        self._held = False

    def _long_press(self) -> None:
        self._held = True
        self._on_shutdown()

    def _released(self) -> None:
        if not self._held:
            self._on_status()


class Panel(Protocol):
    """What the broker holds: a real `GpioPanel` or a `NullPanel`."""

    active: bool

    def show(self, state: LedState) -> None: ...

    def close(self) -> None: ...


class NullPanel:
    """No GPIO: every method does nothing."""

    active = False

    def show(self, state: LedState) -> None:
        """Nothing to show it on."""

    def close(self) -> None:
        """Nothing to release."""


class GpioPanel:
    """The status LED and the button, either of which may be absent."""

    active = True

    def __init__(self, led: StatusLed | None, button: StatusButton | None) -> None:
        self.led = led
        self.button = button

    def show(self, state: LedState) -> None:
        """Show `state` on the LED, if there is one."""
        if self.led is not None:
            self.led.show(state)

    def close(self) -> None:
        """Switch the LED off and release both pins."""
        if self.led is not None:
            self.led.close()
        if self.button is not None:
            self.button.close()


def _on_loop(callback: Callback | None, loop: Any) -> Callback:
    """Run `callback` on the asyncio `loop` (gpiozero calls from its own threads)."""

    def call() -> None:
        if callback is None:
            return
        if loop is None:
            callback()
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # loop closed during shutdown
            log.debug("GPIO button event after the event loop closed")

    return call


def open_panel(*, led_pin: int | None, button_pin: int | None, long_press_seconds: float = 3.0,
               on_status: Callback | None = None, on_shutdown: Callback | None = None,
               loop: Any = None, pin_factory: Any = None, time_scale: float = 1.0) -> Panel:
    """Open the LED and button on the given BCM pins (None = not fitted) and show STARTING.

    `loop` (an asyncio loop) makes the button callbacks run on it, thread-safely. Without GPIO
    hardware, or when a pin cannot be opened, logs one warning and returns a `NullPanel`."""
    if led_pin is None and button_pin is None:
        return NullPanel()
    try:
        from gpiozero.exc import GPIOZeroError, PinFactoryFallback
    except ImportError as exc:
        log.warning("GPIO status LED and button disabled: gpiozero is not installed (%s)", exc)
        return NullPanel()
    led: StatusLed | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)
            if led_pin is not None:
                led = StatusLed(led_pin, pin_factory=pin_factory, time_scale=time_scale)
            button = None if button_pin is None else StatusButton(
                button_pin, long_press_seconds=long_press_seconds,
                on_status=_on_loop(on_status, loop), on_shutdown=_on_loop(on_shutdown, loop),
                pin_factory=pin_factory)
    except (GPIOZeroError, OSError, RuntimeError, ImportError) as exc:
        if led is not None:
            led.close()
        log.warning("GPIO status LED and button disabled: %s: %s", type(exc).__name__, exc)
        return NullPanel()
    panel = GpioPanel(led, button)
    panel.show(LedState.STARTING)
    return panel
