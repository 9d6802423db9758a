# Test double for MicroPython's `network` module (ESP32 flavour), for the firmware tests.
#
# The emulated access point is described by the JSON file named by MPYRUN_WIFI, which the test
# may rewrite at any time: {"ssid": "lab", "password": "secret", "up": true, "join_ms": 50}.
# Without the file there is an open access point that accepts any credentials.
# WLAN.connect() succeeds join_ms after it is called when the access point is up and the
# credentials match. When the test takes the access point down, the station loses its link and
# every open TCP connection is reset, as on a board that walks out of Wi-Fi range.
# Events are recorded like the machine double's: {"ev": "wifi", "state": "connected"}.
import json
import time

import _host
import _netbridge

STA_IF = 0
AP_IF = 1

STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

_ctl_path = _host.getenv("MPYRUN_WIFI")
_log_path = _host.getenv("MPYRUN_HWLOG")
_hostname = "mpy-esp32"


def _record(ev):
    if _log_path:
        _host.append(_log_path, json.dumps(ev) + "\n")


def _access_point():
    ap = {"ssid": None, "password": None, "up": True, "join_ms": 50}
    text = _host.read(_ctl_path) if _ctl_path else None
    if text:
        ap.update(json.loads(text))
    return ap


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name
    return None


class WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface=STA_IF):
        self._if = interface
        self._active = False
        self._status = STAT_IDLE
        self._ssid = None
        self._key = None
        self._join_at = None

    def active(self, flag=None):
        if flag is None:
            return self._active
        self._active = bool(flag)
        if not self._active:
            self._drop(STAT_IDLE)
        return None

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._active:
            raise OSError("STA must be active")
        if self._status == STAT_CONNECTING:
            raise OSError("Wifi Internal Error")
        self._ssid = ssid
        self._key = key
        self._status = STAT_CONNECTING
        self._join_at = time.ticks_add(time.ticks_ms(), _access_point()["join_ms"])

    def disconnect(self):
        self._drop(STAT_IDLE)

    def _drop(self, status):
        if self._status == STAT_GOT_IP:
            _netbridge.drop()
            _record({"ev": "wifi", "state": "disconnected"})
        self._status = status
        self._join_at = None

    def _update(self):
        if not self._active:
            return
        ap = _access_point()
        if self._status == STAT_GOT_IP and not ap["up"]:
            self._drop(STAT_BEACON_TIMEOUT)
        elif self._status == STAT_CONNECTING:
            if time.ticks_diff(time.ticks_ms(), self._join_at) < 0:
                return
            if not ap["up"] or (ap["ssid"] is not None and ap["ssid"] != self._ssid):
                self._status = STAT_NO_AP_FOUND
            elif ap["password"] is not None and ap["password"] != self._key:
                self._status = STAT_WRONG_PASSWORD
            else:
                self._status = STAT_GOT_IP
                _record({"ev": "wifi", "state": "connected", "ssid": self._ssid})

    def isconnected(self):
        self._update()
        return self._status == STAT_GOT_IP

    def status(self, param=None):
        if param == "rssi":
            return -52
        self._update()
        return self._status

    def ifconfig(self, cfg=None):
        if self._status == STAT_GOT_IP:
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kwargs):
        if args == ("mac",):
            return b"\x24\x0a\xc4\x12\x34\x56"
        if args in (("essid",), ("ssid",)):
            return self._ssid or ""
        if args:
            raise ValueError("unknown config param")
        return None
