"""`edgeq demo`: simulated devices and workers that play the three queue patterns live.

1. Load balancing: three cameras publish images to `images/<cam>`; three OCR workers consume
   `$q/images/+` (a `least_inflight` queue), one of them slow. The camera rate swings above and
   below what the workers can do, so depth and lag grow and drain.
2. Last value: a cloud app sends commands to `lights/<id>/commands` with the MQTT 5 user property
   `command_type` while the lights go offline and online; each light, back online, gets only
   the latest command per type from its per-device last-value queue.
3. Buffering with backpressure: a sensor hub sends bursts into `telemetry/#`, a `block` queue
   with a small limit, drained by a slow historian: the queue fills, the producer is slowed.

It uses the gateway answering on `host:port`, declaring the queues it needs over the admin API,
or starts its own gateway in a temporary directory (queues declared in its config file). It runs
until Ctrl-C or `duration` seconds. The clients are real paho-mqtt clients over TCP; nothing here
reaches into the broker.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.admin.client import AdminClient
from gateway.admin.endpoint import AdminError

LVQ_KEY = "user_property:command_type|json:command_type"
DEMO_QUEUES: tuple[dict[str, Any], ...] = (
    {"filter": "images/+", "dispatch": "least_inflight"},
    {"filter": "lights/+/commands", "template": True, "last_value_key": LVQ_KEY},
    {"filter": "telemetry/#", "name": "telemetry", "overflow": "block", "max_messages": 2000},
)
OCR_SECONDS = {"ocr-1": 0.25, "ocr-2": 0.4, "ocr-3": 2.0}  # seconds per image; ocr-3 is slow
LIGHTS = ("light-1", "light-2", "light-3")
COLORS = ("red", "green", "blue", "amber", "white", "violet")
BURST, BURST_EVERY, HISTORIAN_RATE = 2500, 60.0, 60.0
HUB_WINDOW = 50  # well under the gateway's receive maximum (100): paho resends a whole window
REPORT_EVERY = 5.0


class Demo:
    """Shared stop flag and console output for every simulated actor."""

    def __init__(self, host: str, port: int, out: TextIO) -> None:
        self.host, self.port, self.out = host, port, out
        self.stop = threading.Event()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.clients: list[mqtt.Client] = []

    def say(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.started:5.0f}s] {text}", file=self.out, flush=True)

    def client(self, client_id: str, v5: bool = True, receive_max: int = 0,
               clean: bool = True, manual_ack: bool = False, inflight: int = 20,
               on_connect: Any = None, on_message: Any = None) -> mqtt.Client:
        """A paho client connecting in the background and reconnecting by itself (its network
        loop in a thread). The callbacks are set before it connects, so none is missed."""
        if v5:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                            protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        else:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                            clean_session=clean, protocol=mqtt.MQTTv311, manual_ack=manual_ack)
        c.reconnect_delay_set(1, 5)
        c.max_inflight_messages_set(inflight)
        c.on_connect = on_connect
        c.on_message = on_message
        props = None
        if v5 and receive_max:
            props = _properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = receive_max
        if v5:
            c.connect_async(self.host, self.port, keepalive=20, clean_start=True,
                            properties=props)
        else:
            c.connect_async(self.host, self.port, keepalive=20)
        c.loop_start()
        self.clients.append(c)
        return c

    def sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; False once the demo is over."""
        return not self.stop.wait(seconds)

    def spawn(self, target: Any, *args: Any) -> None:
        threading.Thread(target=target, args=(self, *args), daemon=True).start()


class Worker:
    """A consumer that takes `seconds` per message and acknowledges only when done, so its
    in-flight window (MQTT 5 Receive Maximum) is what the dispatcher balances on."""

    def __init__(self, demo: Demo, client_id: str, topic: str, seconds: float,
                 receive_max: int) -> None:
        self.demo, self.client_id, self.seconds = demo, client_id, seconds
        self.done = 0
        self.jobs: queue.Queue[tuple[int, int]] = queue.Queue()
        self.client = demo.client(client_id, receive_max=receive_max, manual_ack=True,
                                  on_connect=lambda c, *_: c.subscribe(topic, qos=1),
                                  on_message=lambda c, u, m: self.jobs.put((m.mid, m.qos)))
        threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while not self.demo.stop.is_set():
            try:
                mid, qos = self.jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            if not self.demo.sleep(self.seconds * random.uniform(0.7, 1.3)):
                return
            self.client.ack(mid, qos)
            self.done += 1


def cameras(demo: Demo) -> None:
    """Three cameras; together 3 to 10 images/s on a 90-second swell (the workers do ~7/s)."""
    clients = [demo.client(f"cam-{i}") for i in (1, 2, 3)]
    image = bytes(random.getrandbits(8) for _ in range(2048))
    for n in itertools.count():
        t = time.monotonic() - demo.started
        per_second = 3.0 + 7.0 * max(0.0, math.sin(2 * math.pi * t / 90.0))
        cam = n % 3
        clients[cam].publish(f"images/cam-{cam + 1}", image, qos=1)
        if not demo.sleep(1.0 / per_second):
            return


@dataclass
class Commands:
    """What the cloud app sent: a sequence number on every command, and per light how many
    since it last went offline."""

    seq: int = 0
    missed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LIGHTS, 0))


def cloud_app(demo: Demo, commands: Commands) -> None:
    """Sends a command to a random light about every 1.5 s, keyed by `command_type`."""
    app = demo.client("cloud-app")
    while demo.sleep(1.5):
        light = random.choice(LIGHTS)
        kind, value = random.choice((("set-color", random.choice(COLORS)),
                                     ("set-brightness", random.randrange(10, 101, 10))))
        props = _properties(PacketTypes.PUBLISH)
        props.UserProperty = [("command_type", kind)]
        commands.seq += 1
        payload = json.dumps({"command_type": kind, "value": value, "seq": commands.seq})
        app.publish(f"lights/{light}/commands", payload, qos=1, properties=props)
        commands.missed[light] += 1


def light(demo: Demo, light_id: str, commands: Commands) -> None:
    """An MQTT 3.1.1 device with a persistent session, like the ESP32 firmware, that goes
    offline and online. Back online, its last-value queue hands it only the latest command
    per `command_type`, however many were sent while it was away."""
    while not demo.stop.is_set():
        missed = commands.missed[light_id]
        got, seq_at_connect = _online(demo, light_id, commands, random.uniform(6, 12))
        waited = [text for seq, text in got if seq <= seq_at_connect]
        if missed:
            plural = "s" if missed > 1 else ""
            demo.say(f"{light_id} came back: {missed} command{plural} had been sent while it "
                     f"was offline; it received only {', '.join(waited) or 'none'} "
                     f"(then {len(got) - len(waited)} live)")
        commands.missed[light_id] = 0
        demo.sleep(random.uniform(10, 20))


def _online(demo: Demo, light_id: str, commands: Commands,
            seconds: float) -> tuple[list[tuple[int, str]], int]:
    """Connect, consume the light's queue for `seconds`, disconnect. What arrived (sequence
    number, command), and the last sequence number sent before it subscribed."""
    got: list[tuple[int, str]] = []
    seq_at_connect = [commands.seq]

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        seq_at_connect[0] = commands.seq
        c.subscribe(f"$q/lights/{light_id}/commands", qos=1)

    def on_message(c: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        got.append(_command(m.payload))

    c = demo.client(light_id, v5=False, clean=False, on_connect=on_connect,
                    on_message=on_message)
    demo.sleep(seconds)
    c.disconnect()
    c.loop_stop()
    demo.clients.remove(c)
    return got, seq_at_connect[0]


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def _command(payload: bytes | bytearray) -> tuple[int, str]:
    """(sequence number, "command_type=value") of a command from `cloud_app`."""
    try:
        doc = json.loads(payload)
        return int(doc["seq"]), f"{doc['command_type']}={doc['value']}"
    except (ValueError, KeyError, TypeError):
        return 0, payload.decode(errors="replace")


def sensor_hub(demo: Demo, counts: dict[str, int]) -> None:
    """A burst of readings every minute, as fast as the gateway acknowledges them (QoS 1, up
    to HUB_WINDOW unacknowledged): when the `block` queue is full, the gateway slows it down."""
    hub = demo.client("sensor-hub", inflight=HUB_WINDOW)
    delay = 3.0
    while demo.sleep(delay):
        begun = time.monotonic()
        demo.say(f"sensor-hub: burst of {BURST} readings into telemetry/#")
        pending: deque[mqtt.MQTTMessageInfo] = deque()
        for i in range(BURST):
            pending.append(hub.publish(f"telemetry/sensor-{i % 40}", f'{{"n": {i}}}', qos=1))
            while len(pending) >= HUB_WINDOW or (i == BURST - 1 and pending):
                if not _acknowledged(demo, pending.popleft()):
                    return
                counts["telemetry"] += 1
        took = time.monotonic() - begun
        demo.say(f"sensor-hub: burst acknowledged in {took:.1f}s"
                 + (" (slowed down: the telemetry queue was full)" if took > 5 else ""))
        delay = max(1.0, BURST_EVERY - took)


def _acknowledged(demo: Demo, info: mqtt.MQTTMessageInfo) -> bool:
    """Wait for one publish's PUBACK; False if the demo stops first."""
    while not demo.stop.is_set():
        try:
            info.wait_for_publish(0.5)
            if info.is_published():
                return True
        except (RuntimeError, ValueError):  # published while disconnected: paho resends it
            return demo.sleep(0.5)  # after reconnecting; do not wait for it here
    return False


def report(demo: Demo, workers: list[Worker], historian: Worker, counts: dict[str, int]) -> None:
    while demo.sleep(REPORT_EVERY):
        done = ", ".join(f"{w.client_id} {w.done}" for w in workers)
        demo.say(f"images done: {done} (ocr-3 is the slow one) · telemetry sent "
                 f"{counts['telemetry']}, stored by historian {historian.done}")


def play(demo: Demo) -> None:
    """Start every actor; they run until `demo.stop` is set."""
    commands = Commands()
    counts = {"telemetry": 0}
    workers = [Worker(demo, name, "$q/images/+", seconds, receive_max=4)
               for name, seconds in OCR_SECONDS.items()]
    historian = Worker(demo, "historian", "$q/telemetry/#", 1.0 / HISTORIAN_RATE,
                       receive_max=10)
    demo.spawn(cameras)
    demo.spawn(cloud_app, commands)
    for light_id in LIGHTS:
        demo.spawn(light, light_id, commands)
    demo.spawn(sensor_hub, counts)
    demo.spawn(report, workers, historian, counts)


def declare_queues(admin: AdminClient, say: Any) -> None:
    """Create the demo queues the gateway does not have yet (matched by topic filter)."""
    have = {q.get("filter") for q in admin.queues()}
    for fields in DEMO_QUEUES:
        if fields["filter"] not in have:
            admin.create(dict(fields))
            say(f"declared queue {fields.get('name') or fields['filter']} "
                f"({', '.join(f'{k}={v}' for k, v in fields.items() if k != 'filter')})")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _free_port(host: str, preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind((host, preferred))
        except OSError:
            s.bind((host, 0))
        return int(s.getsockname()[1])


def _toml_queue(fields: dict[str, Any]) -> str:
    return "[[queues]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())


@contextlib.contextmanager
def own_gateway(host: str, port: int, say: Any) -> Iterator[Path]:
    """A gateway of the demo's own in a temporary directory; stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="edgeq-demo-") as tmp:
        data = Path(tmp)
        config = data / "demo.toml"
        config.write_text("\n".join(_toml_queue(q) for q in DEMO_QUEUES))
        admin = f"127.0.0.1:{_free_port('127.0.0.1', 18083)}"
        log = (data / "gateway.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--listen", f"{host}:{port}", "--data-dir", str(data), "--admin", admin],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while not (answers(host, port) and (data / "admin.json").exists()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AdminError(f"the demo gateway did not start; see {data}/gateway.log")
                time.sleep(0.05)
            say(f"no gateway answered on {host}:{port}, so the demo started one "
                f"(data in {data}). Watch it with:  edgeq top --data-dir {data}")
            yield data
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """`kill` ends the demo like Ctrl-C does, stopping the demo's own gateway too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(host: str = "127.0.0.1", port: int = 1883, *, url: str | None = None,
             token: str | None = None, data_dir: str = "var", duration: float | None = None,
             out: TextIO = sys.stdout) -> int:
    """`edgeq demo`: play the three patterns until Ctrl-C (or `duration` seconds)."""
    demo = Demo(host, port, out)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_stop_on_sigterm(demo.stop))
        if answers(host, port):
            try:
                declare_queues(AdminClient.discover(url, token, data_dir), demo.say)
            except AdminError as e:
                demo.say(f"cannot declare the demo queues ({e}); assuming they exist")
        else:
            stack.enter_context(own_gateway(host, port, demo.say))
        demo.say(f"playing on {host}:{port}: cameras + OCR workers, lights, sensor bursts. "
                 "Ctrl-C stops.")
        play(demo)
        try:
            demo.stop.wait(duration)
        except KeyboardInterrupt:
            pass
        finally:
            demo.stop.set()
            for c in list(demo.clients):
                c.disconnect()
                c.loop_stop()
        demo.say("demo stopped")
    return 0
