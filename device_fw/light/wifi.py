# The Wi-Fi station link. connect() blocks until the board has an IP address, feeding the
# watchdog while it waits, or raises WifiError (an OSError, so the main loop's reconnect path
# handles it like any other network failure).
import time
import network

from light.log import log


class WifiError(OSError):
    pass


def _failure_statuses():
    # Statuses after which waiting longer does not help. Not every port defines every name.
    names = ("STAT_WRONG_PASSWORD", "STAT_NO_AP_FOUND", "STAT_CONNECT_FAIL",
             "STAT_ASSOC_FAIL", "STAT_HANDSHAKE_TIMEOUT", "STAT_BEACON_TIMEOUT")
    out = {}
    for name in names:
        code = getattr(network, name, None)
        if code is not None:
            out[code] = name[5:].lower().replace("_", " ")
    return out


class Station:
    def __init__(self, wifi_cfg, feed):
        self._cfg = wifi_cfg
        self._feed = feed
        self._wlan = network.WLAN(network.STA_IF)
        self._failures = _failure_statuses()

    def isconnected(self):
        return self._wlan.isconnected()

    def connect(self):
        wlan = self._wlan
        wlan.active(True)
        if wlan.isconnected():
            return
        if self._cfg["hostname"]:
            try:
                network.hostname(self._cfg["hostname"])
            except (AttributeError, ValueError, OSError):
                pass  # older firmware: the default hostname stays
        try:
            wlan.disconnect()  # ends a connection attempt still in progress
        except OSError:
            pass
        log("wifi: joining %s" % self._cfg["ssid"])
        wlan.connect(self._cfg["ssid"], self._cfg["password"])
        start = time.ticks_ms()
        while not wlan.isconnected():
            status = wlan.status()
            if status in self._failures:
                raise WifiError("wifi: %s" % self._failures[status])
            if time.ticks_diff(time.ticks_ms(), start) > self._cfg["connect_timeout_ms"]:
                raise WifiError("wifi: no connection after %d ms"
                                % self._cfg["connect_timeout_ms"])
            self._feed()
            time.sleep_ms(100)
        log("wifi: connected, address %s" % wlan.ifconfig()[0])

    def rssi(self):
        """The signal strength in dBm, or None when the port cannot tell."""
        try:
            return self._wlan.status("rssi")
        except (ValueError, OSError, TypeError):
            return None

    def disconnect(self):
        try:
            self._wlan.disconnect()
        except OSError:
            pass
