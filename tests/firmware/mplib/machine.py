# Test double for MicroPython's `machine` module (ESP32 flavour), for the firmware tests.
#
# It behaves like the board's module as far as the firmware can tell, and records what the
# hardware would have done as JSON lines in the file named by MPYRUN_HWLOG:
#   {"ev": "pwm", "pin": 25, "freq": 1000, "duty_u16": 65535}   a PWM duty change
#   {"ev": "bitstream", "pin": 5, "timing": [...], "data": "00ff00"}   bytes sent to NeoPixels
#   {"ev": "pin", "pin": 2, "value": 1}                          a digital output change
#   {"ev": "wdt", "timeout": 30000}                              watchdog armed
#   {"ev": "wdt_expired", "gap_ms": 31000, "timeout": 30000}     fed too late: a board resets
#   {"ev": "reset"}                                              machine.reset(); exits 75
#
# Pins behave like those of the chip named by MPYRUN_CHIP (esp32, esp32s3 or esp32c3; default
# esp32): a GPIO the chip lacks raises ValueError("invalid pin"), and an input-only one (GPIO
# 34-39 on the ESP32) raises ValueError("pin can only be input") when made an output, as the
# board's own machine module does.
import json
import time

import _host
from ubinascii import hexlify

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

EXIT_ON_RESET = 75

_log_path = _host.getenv("MPYRUN_HWLOG")
_chip = _host.getenv("MPYRUN_CHIP") or "esp32"
_GPIOS = {
    "esp32": [p for p in range(40) if p not in (20, 24, 28, 29, 30, 31)],
    "esp32s3": [p for p in range(49) if not 22 <= p <= 25],
    "esp32c3": list(range(22)),
}
_INPUT_ONLY = {"esp32": range(34, 40)}


def _record(ev):
    if _log_path:
        _host.append(_log_path, json.dumps(ev) + "\n")


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


def freq(hz=None):
    return 240000000 if hz is None else None


def reset_cause():
    return int(_host.getenv("MPYRUN_RESET_CAUSE") or PWRON_RESET)


def reset():
    _record({"ev": "reset"})
    raise SystemExit(EXIT_ON_RESET)


def soft_reset():
    reset()


def idle():
    pass


def lightsleep(ms=None):
    time.sleep_ms(ms or 0)


def _pin_id(pin):
    return pin.id if isinstance(pin, Pin) else pin


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if not isinstance(id, int) or id not in _GPIOS[_chip]:
            raise ValueError("invalid pin")
        self.id = id
        self._value = 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self.id in _INPUT_ONLY.get(_chip, ()):
            raise ValueError("pin can only be input")
        self._mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        _record({"ev": "pin", "pin": self.id, "value": self._value})
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __repr__(self):
        return f"Pin({self.id})"


class PWM:
    def __init__(self, pin, freq=5000, duty_u16=None, duty=None):
        self._pin = _pin_id(pin)
        self._freq = freq
        self._duty = 0
        self._live = True
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        elif duty is not None:
            self.duty(duty)

    def _check(self):
        if not self._live:
            raise OSError("PWM inactive")

    def freq(self, f=None):
        self._check()
        if f is None:
            return self._freq
        self._freq = f
        return None

    def duty_u16(self, d=None):
        self._check()
        if d is None:
            return self._duty
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        self._duty = d
        _record({"ev": "pwm", "pin": self._pin, "freq": self._freq, "duty_u16": d})
        return None

    def duty(self, d=None):
        if d is None:
            return self.duty_u16() >> 6
        self.duty_u16(min(65535, d * 64))
        return None

    def deinit(self):
        self._live = False


def bitstream(pin, encoding, timing, buf):
    _record({"ev": "bitstream", "pin": _pin_id(pin), "encoding": encoding,
             "timing": list(timing), "data": hexlify(buf).decode()})


class WDT:
    def __init__(self, id=0, timeout=5000):
        self._timeout = timeout
        self._last = time.ticks_ms()
        _record({"ev": "wdt", "timeout": timeout})

    def feed(self):
        now = time.ticks_ms()
        gap = time.ticks_diff(now, self._last)
        if gap > self._timeout:
            _record({"ev": "wdt_expired", "gap_ms": gap, "timeout": self._timeout})
        self._last = now
