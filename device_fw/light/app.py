# The smart light: an MQTT session with the gateway and the main loop.
#
# Session: client id = device_id, clean_session=False (the gateway keeps the subscription and
# queued commands while the light is away), a last will "offline" (retained, QoS 1) on the
# status topic, "online" published there after every connect, and a subscription at QoS 1 to
# the light's own last-value command queue ($q/lights/<id>/commands).
#
# Commands are applied inside the message callback. The PUBACK goes out only once the command
# is on the LED and its state in /state.json (light/store.py): when the flash write budget says
# "not yet", the PUBACK waits for the write, so a reset before it gets the command delivered
# again instead of losing it. A command id is
# applied once: a redelivered one is acknowledged again and nothing else. A bad command (too
# large, not JSON, not valid) is acknowledged too, never retried or fatal, and reported as a
# JSON event on the status topic. The state and events are published from the main loop, not
# from the callback, so one MQTT exchange never runs inside another.
#
# Any network failure (Wi-Fi gone, gateway restarted, unreachable or silent, a dead link found
# by the keepalive) drops the connection and retries with exponential backoff. The backoff is
# cleared only by a connection that lasted STABLE_MS, so two boards with one id (each connect
# takes the other's session over) slow down instead of flapping. The watchdog is fed by the
# loop; every socket operation has a deadline shorter than the watchdog's.
#
# A hardware error (an LED pin the chip cannot drive, an exception from machine) does not reset
# the board: the light reports it, retained, on the status topic instead of "online", does not
# subscribe, and leaves commands unacknowledged in the queue until the wiring is fixed.
import json
import sys
import time
import machine
from umqtt.simple import MQTTException

from light import __version__, commands, discovery, update
from light import config as configmod
from light.backoff import Backoff
from light.hw import NoLed, board_chip, make_checked_led
from light.log import log
from light.mqtt import Client, LinkDead, is_timeout
from light.store import Store
from light.telemetry import Telemetry
from light.wifi import Station

# How the client reports a broken link: OSError from the socket (OSError(-1) at end of
# stream, ETIMEDOUT past a deadline, LinkDead from the keepalive), IndexError or AssertionError
# from umqtt.simple when a read returns short, MQTTException when the gateway refuses the
# connection or a subscription.
LINK_ERRORS = (OSError, IndexError, AssertionError, MQTTException)
STATE_FILE = "/state.json"
STABLE_MS = 10000  # a connection that ends sooner counts as a failed attempt for the backoff
MAX_EVENTS = 4  # reports kept while offline; older ones are dropped
ECONNRESET = 104
EPIPE = 32

CONNACK_REFUSED = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


def closed_by_gateway(e):
    return isinstance(e, OSError) and bool(e.args) and e.args[0] in (-1, ECONNRESET, EPIPE)


def describe_error(e, timeout_ms):
    if isinstance(e, MQTTException) and e.args and e.args[0] in CONNACK_REFUSED:
        return "gateway refused the connection: %s" % CONNACK_REFUSED[e.args[0]]
    if isinstance(e, MQTTException) and e.args and e.args[0] == 0x80:
        return "gateway refused the subscription"
    if isinstance(e, LinkDead):
        return str(e)
    if is_timeout(e):
        return "no answer from the gateway in %d ms" % timeout_ms
    if closed_by_gateway(e):
        return "connection closed by the gateway"
    if isinstance(e, (IndexError, AssertionError)):
        return "connection broken mid-packet"
    return "%s %s" % (type(e).__name__, e)


class NoWatchdog:
    def feed(self):
        pass


class Light:
    def __init__(self, cfg, led, station, wdt, telemetry, fault=None):
        self.cfg = cfg
        self.telemetry = telemetry
        self.led = led
        self.station = station
        self.wdt = wdt
        self.fault = fault
        self.store = Store(STATE_FILE, cfg["state_save_ms"], commands.initial_state())
        self.restored = self.store.load(commands.valid_state)
        self.last_command_id = None
        self.last_error = None
        self.received = 0
        self.events = []
        self.client = None
        self.connected_at = None
        self.dirty = True
        self.last_ping = 0
        self.topic_commands = configmod.topic(cfg, "commands")
        self.topic_state = configmod.topic(cfg, "state")
        self.topic_status = configmod.topic(cfg, "status")
        self.topic_telemetry = configmod.topic(cfg, "telemetry")
        self.topic_update = cfg["topics"]["update"] and configmod.topic(cfg, "update")
        self.restart = False
        self.trial_until = None
        if update.on_trial():
            # An update on trial that has not connected by then resets (main.py counts starts).
            self.trial_until = time.ticks_add(time.ticks_ms(), cfg["update_trial_s"] * 1000)
        self.backoff = Backoff(cfg["reconnect_min_ms"], cfg["reconnect_max_ms"])

    # --- the loop ---------------------------------------------------------------------------

    def run(self):
        if self.restored:
            log("state restored from %s: %s"
                % (STATE_FILE, commands.describe_state(self.store.state)))
        self.show(commands.output_rgb(self.store.state))
        limit = self.cfg["max_loops"]
        loops = 0
        while not limit or loops < limit:
            loops += 1
            self.wdt.feed()
            self.check_trial()  # also while the link is down: that is when a trial fails
            try:
                self.step()
            except LINK_ERRORS as e:
                self.link_down(e)
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
        elif self.backoff.failures and self.connected_ms() >= STABLE_MS:
            self.backoff.reset()
        self.receive()
        self.save_state()
        if not self.store.dirty:
            self.client.release_acks()
        self.publish_events()
        if self.restart:
            self.restart_into_update()
        if self.dirty:
            self.publish_state()
        self.telemetry.tick()
        if self.telemetry.due():
            doc = self.telemetry.snapshot()
            self.client.publish(self.topic_telemetry, json.dumps(doc), True, 0)
        self.keepalive()

    def receive(self):
        while True:  # take every message that is waiting, one per check_msg()
            before = self.received
            op = self.client.check_msg()
            if op is not None:
                raise MQTTException("unexpected packet type 0x%02x" % op)
            if self.received == before:
                return
            self.wdt.feed()

    def link_down(self, e):
        lasted = self.connected_ms()
        self.close()
        why = describe_error(e, self.cfg["gateway"]["timeout_ms"])
        if lasted is not None and lasted < STABLE_MS and closed_by_gateway(e):
            why += " %d ms after connecting; another board may be using the id %s" \
                % (lasted, self.cfg["device_id"])
        delay = self.backoff.next_ms()
        log("link down: %s; retrying in %d ms" % (why, delay))
        self.sleep(delay)

    def sleep(self, ms):
        # In slices, so the watchdog is fed however long the backoff is.
        while ms > 0:
            self.wdt.feed()
            n = min(ms, 1000)
            time.sleep_ms(n)
            ms -= n

    def show(self, rgb):
        """Put `rgb` on the LED; a hardware error becomes the light's fault, never a reset."""
        try:
            self.led.show(rgb)
            return True
        except (ValueError, OSError) as e:
            self.hardware_error("led: %s: %s" % (type(e).__name__, e))
            return False

    def hardware_error(self, message):
        log("hardware error: %s" % message)
        self.fault = message
        self.led = NoLed()
        if self.client is not None:
            self.client.ack = False
        self.report({"event": "hardware-error", "error": message}, True)

    # --- the MQTT session -------------------------------------------------------------------

    def tls_params(self, gw):
        import ssl

        params = {"server_hostname": gw["host"]}
        if gw["ca_file"]:
            with open(gw["ca_file"], "rb") as f:
                params["cadata"] = f.read()
            params["cert_reqs"] = ssl.CERT_REQUIRED
        else:  # the config allows this only with gateway.insecure = true
            log("tls: the gateway's certificate is NOT checked (gateway.insecure = true)")
            params["cert_reqs"] = ssl.CERT_NONE
        return params

    def make_client(self):
        gw = self.cfg["gateway"]
        return Client(self.cfg["device_id"], gw["host"], gw["port"], gw["username"],
                      gw["password"], gw["keepalive_s"], gw["tls"],
                      self.tls_params(gw) if gw["tls"] else {}, gw["timeout_ms"],
                      commands.MAX_PAYLOAD, self.on_oversize)

    def connect(self):
        gw = self.cfg["gateway"]
        client = self.make_client()
        client.set_callback(self.on_message)
        client.set_last_will(self.topic_status, b"offline", True, 1)
        self.client = client  # from here on, close() releases the socket if anything fails
        present = client.connect(False)
        self.connected_at = time.ticks_ms()
        log("mqtt: connected to %s:%d as %s (session present: %d)"
            % (gw["host"], gw["port"], self.cfg["device_id"], present))
        if self.fault is not None:
            client.ack = False
            self.publish_event({"event": "hardware-error", "error": self.fault}, True)
            log("mqtt: hardware error reported on %s; not subscribing" % self.topic_status)
        else:
            # Subscribing again on a present session is harmless and heals a gateway that
            # lost it.
            client.subscribe(self.topic_commands, 1)
            self.listen_for_updates()
            client.publish(self.topic_status, b"online", True, 1)
            log("mqtt: subscribed to %s; online" % self.topic_commands)
            self.announce()
            self.confirm_update()
        self.dirty = True  # the retained state may be older than this boot
        self.telemetry.sent_at = None  # and telemetry goes out after every connect
        self.last_ping = time.ticks_ms()

    def announce(self):
        ha = self.cfg["home_assistant"]
        if not ha["discovery"]:
            return
        topics = {"commands": self.topic_commands, "state": self.topic_state,
                  "status": self.topic_status}
        doc = discovery.config(self.cfg["device_id"], self.telemetry.chip, topics)
        self.client.publish(discovery.topic(ha["prefix"], self.cfg["device_id"]),
                            json.dumps(doc), True, 1)

    # --- application updates (light/update.py) ---------------------------------------------

    def listen_for_updates(self):
        if self.topic_update:
            self.client.streams[self.topic_update.encode()] = self.on_update
            self.client.subscribe(self.topic_update, 1)

    def confirm_update(self):
        version = update.confirm()
        if version is not None:
            self.trial_until = None
            log("update %s connected: kept" % version)
            self.report({"event": "update-confirmed", "version": version})
        version = update.take_rollback_report()
        if version is not None:
            self.report({"event": "update-rolled-back", "version": version})

    def check_trial(self):
        if self.trial_until is not None and time.ticks_diff(time.ticks_ms(),
                                                             self.trial_until) > 0:
            log("update on trial did not connect in %d s; resetting" % self.cfg["update_trial_s"])
            machine.reset()

    def on_update(self, client, size):
        """Stream a bundle to flash; install it when it checks out (the reset comes later)."""
        self.received += 1
        receiver = update.Receiver(__version__)
        if size > update.MAX_BUNDLE + update.MAX_MANIFEST:
            receiver.error = "the bundle is %d bytes; at most %d fit" % (size, update.MAX_BUNDLE)
        client.stream(size, receiver.feed)
        try:
            manifest = receiver.finish()
        except update.UpdateError as e:
            log("update rejected: %s" % e)
            self.report({"event": "update-rejected", "error": str(e)})
            return
        update.install(manifest)
        log("update %s verified and installed; restarting" % manifest["version"])
        self.report({"event": "update-installed", "version": manifest["version"]})
        self.restart = True

    def restart_into_update(self):
        # Everything is acknowledged and on flash before the reset: the bundle is not sent
        # again, and no applied command is lost.
        self.store.saved_at = None
        self.save_state()
        self.client.release_acks()
        self.close()
        machine.reset()

    def connected_ms(self):
        if self.connected_at is None:
            return None
        return time.ticks_diff(time.ticks_ms(), self.connected_at)

    def close(self):
        client = self.client
        self.client = None
        self.connected_at = None
        if client is not None:
            client.close()

    def keepalive(self):
        # umqtt.simple does not ping by itself; the gateway drops a client silent for 1.5x the
        # keepalive, so ping at half of it. No PINGRESP within another half means the link is
        # dead: noticed at most one keepalive after it died, within the 1.5x of the gateway.
        half_keepalive_ms = self.cfg["gateway"]["keepalive_s"] * 500
        self.client.check_alive(half_keepalive_ms)
        if time.ticks_diff(time.ticks_ms(), self.last_ping) >= half_keepalive_ms:
            self.client.ping()
            self.last_ping = time.ticks_ms()

    def publish_state(self):
        doc = dict(self.store.state)
        doc["last_command_id"] = self.last_command_id
        doc["last_error"] = self.last_error
        self.dirty = False
        self.client.publish(self.topic_state, json.dumps(doc), True, 1)

    def report(self, doc, retain=False):
        """Queue a JSON event for the status topic (published from the main loop)."""
        self.events.append((doc, retain))
        if len(self.events) > MAX_EVENTS:
            self.events.pop(0)

    def publish_events(self):
        while self.events:
            doc, retain = self.events[0]
            self.publish_event(doc, retain)
            self.events.pop(0)

    def publish_event(self, doc, retain):
        self.client.publish(self.topic_status, json.dumps(doc), retain, 1)

    def save_state(self):
        if self.store.flush():
            log("state saved: %s" % commands.describe_state(self.store.state))

    # --- commands ---------------------------------------------------------------------------

    def on_message(self, topic, msg):
        self.received += 1
        self.handle(topic, msg)
        # Acknowledged once the state it leads to is on flash (a redelivery of a command
        # applied but not yet saved included).
        self.client.defer = self.store.dirty

    def handle(self, topic, msg):
        if self.fault is not None:
            log("command held in the queue: %s" % self.fault)
            return
        try:
            name = topic.decode()
            cmd = commands.parse(msg)
            new = commands.apply(self.store.state, cmd)
        except Exception as e:  # a bad command must never stop the light; it is acknowledged
            error = str(e) if isinstance(e, commands.CommandError) else repr(e)
            self.reject(topic, len(msg), error, msg[:80])
            return
        if self.store.seen(cmd["id"]):
            log("command %s already applied; acknowledged again" % cmd["id"])
            return
        if not self.show(commands.output_rgb(new)):
            return
        self.store.record(new, cmd["id"])
        self.save_state()
        self.last_command_id = cmd["id"]
        self.last_error = None
        self.dirty = True
        log("command applied on %s: %s" % (name, commands.describe(cmd)))

    def on_oversize(self, topic, size):
        self.received += 1
        if self.fault is not None:
            log("command held in the queue: %s" % self.fault)
            return
        if topic is None:
            self.reject(None, size, "topic too long", b"")
        else:
            self.reject(topic, size, commands.too_large(size), b"")

    def reject(self, topic, size, error, excerpt):
        name = _printable(topic) if topic is not None else "(a topic too long to read)"
        self.last_error = error
        self.dirty = True
        log("command rejected on %s: %s: %r" % (name, error, excerpt))
        self.report({"event": "command-rejected", "error": error, "bytes": size,
                     "topic": name})

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


def _printable(raw):
    try:
        return raw.decode()
    except UnicodeError:
        return repr(raw)


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
    if cfg["device_id"] is None:
        cfg["device_id"] = configmod.mac_device_id(machine.unique_id())
        log("device id %s (from the MAC)" % cfg["device_id"])
    wdt = machine.WDT(timeout=cfg["watchdog_ms"]) if cfg["watchdog_ms"] else NoWatchdog()
    chip = board_chip(cfg)
    led, fault = make_checked_led(cfg, chip)
    station = Station(cfg["wifi"], wdt.feed)
    telemetry = Telemetry(cfg["telemetry_s"], reset_cause_name(), chip, station.rssi)
    light = Light(cfg, led, station, wdt, telemetry, fault)
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
