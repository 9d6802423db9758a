# Telemetry: what an operator wants to see about each light without a serial cable, published
# retained (QoS 0) on the telemetry topic after every connect and every telemetry_s seconds:
#   {"version": "0.2.0", "uptime_s": 3600, "free_heap": 81234, "rssi": -61,
#    "reset_cause": "wdt_reset", "chip": "esp32"}
# uptime_s is summed from tick differences at every loop turn (tick()), since time.ticks_ms()
# wraps (every ~12 days on an ESP32) and the board has no clock set.
import gc
import time

from light import __version__


class Telemetry:
    def __init__(self, interval_s, reset_cause, chip, rssi):
        self.interval_ms = interval_s * 1000
        self.reset_cause = reset_cause
        self.chip = chip
        self.rssi = rssi
        self.uptime_ms = 0
        self.ticked_at = time.ticks_ms()
        self.sent_at = None

    def due(self):
        """Whether it is time to publish (always right after a connect: sent_at is None)."""
        if not self.interval_ms:
            return self.sent_at is None
        return self.sent_at is None or \
            time.ticks_diff(time.ticks_ms(), self.sent_at) >= self.interval_ms

    def tick(self):
        now = time.ticks_ms()
        self.uptime_ms += time.ticks_diff(now, self.ticked_at)
        self.ticked_at = now

    def snapshot(self):
        self.tick()
        self.sent_at = self.ticked_at
        gc.collect()
        return {"version": __version__, "uptime_s": self.uptime_ms // 1000,
                "free_heap": gc.mem_free(), "rssi": self.rssi(),
                "reset_cause": self.reset_cause, "chip": self.chip}
