# The LED, behind one method: show((r, g, b)) with levels from 0 to 255.
#
# Two drivers, chosen by led.driver in config.json:
# - "pwm": an RGB LED on three PWM pins through current-limiting resistors. Common cathode
#   (to GND) by default; a common-anode LED (to 3V3) needs led.active_low = true.
# - "neopixel": a WS2812/SK6812 strip or single pixel on one data pin, all pixels the same
#   colour. It writes machine.bitstream() directly, which is what the neopixel module frozen
#   into the ESP32 firmware does, without the module's per-pixel bookkeeping.
# make_checked_led() checks the pins for the chip the board really is before touching them, and
# turns any error from machine into a message: the light reports it instead of resetting.
import sys

import machine

from light import config as configmod
from light.log import log


class PwmRgbLed:
    def __init__(self, pins, freq_hz=1000, active_low=False):
        self._active_low = active_low
        off = 65535 if active_low else 0
        self._pwms = [machine.PWM(machine.Pin(p, machine.Pin.OUT), freq=freq_hz, duty_u16=off)
                      for p in pins]

    def show(self, rgb):
        for pwm, level in zip(self._pwms, rgb):
            duty = level * 257  # 0..255 -> 0..65535
            pwm.duty_u16(65535 - duty if self._active_low else duty)


class NeoPixelLed:
    TIMING_800KHZ = (400, 850, 800, 450)  # ns: high for a 0, low for a 0, high for a 1, low for a 1

    def __init__(self, pin, count=1):
        self._pin = machine.Pin(pin, machine.Pin.OUT)
        self._buf = bytearray(3 * count)

    def show(self, rgb):
        buf = self._buf
        for i in range(0, len(buf), 3):  # the wire order is green, red, blue
            buf[i] = rgb[1]
            buf[i + 1] = rgb[0]
            buf[i + 2] = rgb[2]
        machine.bitstream(self._pin, 0, self.TIMING_800KHZ, buf)


def make_led(led_cfg):
    if led_cfg["driver"] == "neopixel":
        return NeoPixelLed(led_cfg["pin"], led_cfg["count"])
    return PwmRgbLed(led_cfg["pins"], led_cfg["freq_hz"], led_cfg["active_low"])


class NoLed:
    """Stands in for an LED that could not be set up."""

    def show(self, rgb):
        pass


def board_chip(cfg):
    """The chip this board is (MicroPython names it), else the one the config names."""
    return configmod.board_chip(getattr(sys.implementation, "_machine", ""), cfg["chip"])


def make_checked_led(cfg, board):
    """(led, None), or (NoLed(), why) when the pins or the hardware of chip `board` refuse."""
    if board != cfg["chip"]:
        log("chip: the board is an %s, the config says %s; checking pins for the board"
            % (board, cfg["chip"]))
    try:
        configmod.check_pins(cfg, board)
        return make_led(cfg["led"]), None
    except configmod.ConfigError as e:
        fault = str(e)
    except (ValueError, OSError) as e:
        fault = "led: %s: %s" % (type(e).__name__, e)
    log("hardware error: %s" % fault)
    return NoLed(), fault
