# The smart light: an MQTT session with the gateway and the main loop.
#
# Session: client id = device_id, clean_session=False (the gateway keeps the subscription and
# queued commands while the light is away), a last will "offline" (retained, QoS 1) on the
# status topic, "online" published there after every connect, and a subscription at QoS 1 to
# the light's own last-value command queue ($q/lights/<id>/commands).
#
# Commands are applied inside the message callback. umqtt.simple sends the PUBACK only after
# the callback returns, so a command is acknowledged (and leaves the gateway's queue) once it
# is on the LED. A bad command is logged and acknowledged too, never retried or fatal.
# The state is published (retained, QoS 1) from the main loop, not from the callback, so one
# MQTT exchange never runs inside another.
#
# Any network failure (Wi-Fi gone, gateway restarted or unreachable) drops the connection and
# retries with exponential backoff. The watchdog is fed by the loop, while waiting for Wi-Fi and
# while backing off; only a call that hangs longer than watchdog_ms resets the board.
import json
import sys
import time
import machine
from umqtt.simple import MQTTClient, MQTTException

from light import __version__, commands
from light import config as configmod
from light.backoff import Backoff
from light.hw import make_led
from light.log import log
from light.wifi import Station

# How umqtt.simple 1.3.4 reports a broken link: OSError from the socket (OSError(-1) at end of
# stream), IndexError or AssertionError when a read returns short, MQTTException when the
# gateway refuses the connection or a subscription.
LINK_ERRORS = (OSError, IndexError, AssertionError, MQTTException)

CONNACK_REFUSED = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


def describe_error(e):
    if isinstance(e, MQTTException) and e.args and e.args[0] in CONNACK_REFUSED:
        return "gateway refused the connection: %s" % CONNACK_REFUSED[e.args[0]]
    if isinstance(e, MQTTException) and e.args and e.args[0] == 0x80:
        return "gateway refused the subscription"
    if isinstance(e, OSError) and e.args and e.args[0] == -1:
        return "connection closed by the gateway"
    if isinstance(e, (IndexError, AssertionError)):
        return "connection broken mid-packet"
    return "%s %s" % (type(e).__name__, e)


class NoWatchdog:
    def feed(self):
        pass


class Light:
    def __init__(self, cfg, led, station, wdt):
        self.cfg = cfg
        self.led = led
        self.station = station
        self.wdt = wdt
        self.state = commands.initial_state()
        self.last_command_id = None
        self.last_error = None
        self.received = 0
        self.client = None
        self.dirty = True
        self.last_ping = 0
        self.topic_commands = configmod.topic(cfg, "commands")
        self.topic_state = configmod.topic(cfg, "state")
        self.topic_status = configmod.topic(cfg, "status")
        self.backoff = Backoff(cfg["reconnect_min_ms"], cfg["reconnect_max_ms"])

    # --- the loop ---------------------------------------------------------------------------

    def run(self):
        self.led.show(commands.output_rgb(self.state))
        limit = self.cfg["max_loops"]
        loops = 0
        while not limit or loops < limit:
            loops += 1
            self.wdt.feed()
            try:
                self.step()
            except LINK_ERRORS as e:
                self.close()
                delay = self.backoff.next_ms()
                log("link down: %s; retrying in %d ms" % (describe_error(e), delay))
                self.sleep(delay)
                continue
            time.sleep_ms(self.cfg["poll_ms"])
        self.shutdown()

    def step(self):
        if not self.station.isconnected():
            if self.client is not None:
                log("wifi: link lost")
                self.close()
            self.station.connect()
        if self.client is None:
            self.connect()
            self.backoff.reset()
        while True:  # take every message that is waiting, one per check_msg()
            before = self.received
            op = self.client.check_msg()
            if op is not None:
                raise MQTTException("unexpected packet type 0x%02x" % op)
            if self.received == before:
                break
            self.wdt.feed()
        if self.dirty:
            self.publish_state()
        self.keepalive()

    def sleep(self, ms):
        # In slices, so the watchdog is fed however long the backoff is.
        while ms > 0:
            self.wdt.feed()
            n = min(ms, 1000)
            time.sleep_ms(n)
            ms -= n

    # --- the MQTT session -------------------------------------------------------------------

    def make_client(self):
        gw = self.cfg["gateway"]
        ssl_params = {}
        if gw["tls"]:
            import ssl

            # umqtt.simple 1.3.4 does "import ussl"; current firmware has only "ssl" (a frozen
            # Python module, which the u-prefix fallback for built-in modules does not reach).
            sys.modules.setdefault("ussl", ssl)
            ssl_params["server_hostname"] = gw["host"]
            if gw["ca_file"]:
                with open(gw["ca_file"], "rb") as f:
                    ssl_params["cadata"] = f.read()
                ssl_params["cert_reqs"] = ssl.CERT_REQUIRED
        return MQTTClient(self.cfg["device_id"], gw["host"], gw["port"], gw["username"],
                          gw["password"], gw["keepalive_s"], gw["tls"], ssl_params)

    def connect(self):
        gw = self.cfg["gateway"]
        client = self.make_client()
        client.set_callback(self.on_message)
        client.set_last_will(self.topic_status, b"offline", True, 1)
        self.client = client  # from here on, close() releases the socket if anything fails
        present = client.connect(False)
        log("mqtt: connected to %s:%d as %s (session present: %d)"
            % (gw["host"], gw["port"], self.cfg["device_id"], present))
        # Subscribing again on a present session is harmless and heals a gateway that lost it.
        client.subscribe(self.topic_commands, 1)
        client.publish(self.topic_status, b"online", True, 1)
        log("mqtt: subscribed to %s; online" % self.topic_commands)
        self.dirty = True  # the retained state may be older than this boot
        self.last_ping = time.ticks_ms()

    def close(self):
        client = self.client
        self.client = None
        if client is not None and client.sock is not None:
            try:
                client.sock.close()
            except OSError:
                pass

    def keepalive(self):
        # umqtt.simple does not ping by itself; the gateway drops a client silent for 1.5x
        # the keepalive, so ping at half of it.
        half_keepalive_ms = self.cfg["gateway"]["keepalive_s"] * 500
        if time.ticks_diff(time.ticks_ms(), self.last_ping) >= half_keepalive_ms:
            self.client.ping()
            self.last_ping = time.ticks_ms()

    def publish_state(self):
        doc = dict(self.state)
        doc["last_command_id"] = self.last_command_id
        doc["last_error"] = self.last_error
        self.dirty = False
        self.client.publish(self.topic_state, json.dumps(doc), True, 1)

    def on_message(self, topic, msg):
        self.received += 1
        self.dirty = True
        name = topic.decode() if isinstance(topic, bytes) else topic
        try:
            cmd = commands.parse(msg)
            new = commands.apply(self.state, cmd)
            self.led.show(commands.output_rgb(new))
        except Exception as e:  # a bad command must never stop the light; it is acknowledged
            self.last_error = str(e) if isinstance(e, commands.CommandError) else repr(e)
            log("command rejected on %s: %s: %r" % (name, self.last_error, msg[:80]))
            return
        self.state = new
        self.last_command_id = cmd["id"]
        self.last_error = None
        log("command applied on %s: %s" % (name, commands.describe(cmd)))

    def shutdown(self):
        # A clean stop (max_loops reached): say "offline" ourselves, since a DISCONNECT
        # suppresses the last will.
        if self.client is None:
            return
        try:
            self.client.publish(self.topic_status, b"offline", True, 1)
            self.client.disconnect()
        except LINK_ERRORS:
            pass
        self.client = None
        log("stopped after %d loops" % self.cfg["max_loops"])


def reset_cause_name():
    names = {}
    for name in ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
        if hasattr(machine, name):
            names[getattr(machine, name)] = name.lower()
    return names.get(machine.reset_cause(), "unknown")


def main(config_path="/config.json"):
    """Start the light. Returns (to the REPL) only on a bad config or after max_loops."""
    import umqtt.simple

    log("edgeq light %s; reset cause: %s; umqtt from %s"
        % (__version__, reset_cause_name(), getattr(umqtt.simple, "__file__", "?")))
    try:
        cfg = configmod.load(config_path)
    except configmod.ConfigError as e:
        log("config error: %s" % e)
        log("fix it with: edgeq device config <file> --port <port>; not starting")
        return
    wdt = machine.WDT(timeout=cfg["watchdog_ms"]) if cfg["watchdog_ms"] else NoWatchdog()
    light = Light(cfg, make_led(cfg["led"]), Station(cfg["wifi"], wdt.feed), wdt)
    try:
        light.run()
    except KeyboardInterrupt:
        if cfg["watchdog_ms"]:
            log("interrupted; the watchdog is still armed and resets the board in %d ms"
                % cfg["watchdog_ms"])
        raise
    except Exception as e:
        sys.print_exception(e)
        log("fatal: %r; resetting in 5 s" % e)
        time.sleep(5)
        machine.reset()
