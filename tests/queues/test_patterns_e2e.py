"""The three patterns of the problem statement, end to end, with real clients over real sockets.

(1) load balancing with least_inflight, (2) last value for an offline light, (3) buffering with
backpressure on a `block` queue; plus the crash-safety promise: SIGKILL loses nothing that was
acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

from gateway.mqtt.packets import MQTT_5, MQTT_311, PubAck, Publish
from tests.conftest import GatewayFactory
from tests.support.clients import RawClient, connected, mosquitto_pub
from tests.support.procs import GatewayProcess

JOBS = """
[[queues]]
filter = "images/+"
dispatch = "least_inflight"
max_inflight = 4
"""


def publish_many(port: int, topic: str, payloads: list[bytes], version: int = MQTT_311,
                 properties: list[dict[str, object]] | None = None,
                 ack_timeout: float = 10) -> int:
    """Pipelined QoS 1 publishes; returns how many were acknowledged with a success code."""
    producer = connected(port, f"producer-{topic}-{time.monotonic_ns()}", version)
    acked = 0
    with producer:
        window = 50
        sent = 0
        while acked < len(payloads):
            while sent < len(payloads) and sent - acked < window:
                props = properties[sent] if properties else {}
                producer.send_packet(Publish(topic, payloads[sent], 1, False, False,
                                             sent % 65535 + 1, props))  # type: ignore[arg-type]
                sent += 1
            ack = producer.expect(PubAck, ack_timeout)
            assert ack.reason_code < 0x80, f"PUBACK 0x{ack.reason_code:02X}"
            acked += 1
    return acked


def test_worker_pool_gets_every_job_once_and_a_slow_worker_gets_fewer(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(JOBS)
    jobs = [f"job-{i}".encode() for i in range(1000)]
    assert publish_many(gw.port, "images/process", jobs) == 1000

    received: dict[str, list[bytes]] = {"fast-1": [], "fast-2": [], "slow": []}
    done = threading.Event()

    def work(name: str, delay: float) -> None:
        with connected(gw.port, name, MQTT_311) as worker:
            worker.subscribe("$q/images/+", qos=1)
            while not done.is_set():
                try:
                    message = worker.receive(timeout=0.5, ack=False)
                except TimeoutError:
                    continue
                assert message.topic == "images/process"
                received[name].append(message.payload)
                time.sleep(delay)
                worker.send_packet(PubAck(message.packet_id))
                if sum(len(v) for v in received.values()) >= len(jobs):
                    done.set()

    threads = [threading.Thread(target=work, args=(name, 0.02 if name == "slow" else 0.0))
               for name in received]
    for t in threads:
        t.start()
    assert done.wait(60), f"only {sum(len(v) for v in received.values())} jobs arrived"
    for t in threads:
        t.join(10)
    everything = [p for v in received.values() for p in v]
    assert Counter(everything) == Counter(jobs)
    assert len(received["slow"]) < len(received["fast-1"])
    assert len(received["slow"]) < len(received["fast-2"])


def test_a_worker_that_dies_mid_job_has_its_job_redelivered(gateway: GatewayProcess,
                                                            gateway_factory: GatewayFactory
                                                            ) -> None:
    gw = gateway_factory(JOBS)
    publish_many(gw.port, "images/cam1", [b"the-job"])
    doomed = connected(gw.port, "doomed", MQTT_311)
    doomed.subscribe("$q/images/+", qos=1)
    first = doomed.receive(ack=False)
    assert first.payload == b"the-job" and not first.dup
    doomed.close()  # socket closed without PUBACK
    with connected(gw.port, "survivor", MQTT_311) as survivor:
        survivor.subscribe("$q/images/+", qos=1)
        again = survivor.receive()
        assert again.payload == b"the-job" and again.dup


def test_a_rejected_message_goes_to_another_consumer(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(JOBS)
    with connected(gw.port, "picky", MQTT_5) as picky:
        picky.subscribe("$q/images/+", qos=1)
        publish_many(gw.port, "images/cam1", [b"not-for-me"])
        offered = picky.receive(ack=False)
        with connected(gw.port, "willing", MQTT_5) as willing:
            willing.subscribe("$q/images/+", qos=1)
            picky.send_packet(PubAck(offered.packet_id, 0x80))
            taken = willing.receive()
            assert taken.payload == b"not-for-me" and taken.dup
            picky.expect_silence()


def test_offline_light_gets_only_the_last_command_per_key(gateway: GatewayProcess) -> None:
    # the embedded default config declares lights/+/commands as a template last-value queue
    for colour in ("blue", "red", "green"):
        mosquitto_pub(gateway.port, "-V", "mqttv5", "-q", "1", "-t", "lights/light-123/commands",
                      "-D", "publish", "user-property", "command_type", "set-color",
                      "-m", f'{{"color": "{colour}"}}')
    for level in ("10", "80"):
        mosquitto_pub(gateway.port, "-V", "mqttv5", "-q", "1", "-t", "lights/light-123/commands",
                      "-D", "publish", "user-property", "command_type", "set-brightness",
                      "-m", f'{{"level": {level}}}')
    with connected(gateway.port, "light-123", MQTT_311, clean_start=False) as light:
        light.subscribe("$q/lights/light-123/commands", qos=1)
        got = sorted(light.receive().payload for _ in range(2))
        light.expect_silence(0.5)
    assert got == [b'{"color": "green"}', b'{"level": 80}']


def test_a_command_without_the_key_is_kept_not_dropped(gateway: GatewayProcess) -> None:
    for payload in ("first", "second"):
        mosquitto_pub(gateway.port, "-q", "1", "-t", "lights/light-9/commands", "-m", payload)
    with connected(gateway.port, "light-9", MQTT_311) as light:
        light.subscribe("$q/lights/light-9/commands", qos=1)
        assert [light.receive().payload for _ in range(2)] == [b"first", b"second"]


def test_subscribing_to_an_unknown_queue_is_refused(gateway: GatewayProcess) -> None:
    with connected(gateway.port, "lost", MQTT_5) as client:
        assert client.subscribe("$q/no/such/queue", qos=1).reason_codes == [0x8F]
    with connected(gateway.port, "lost311", MQTT_311) as client:
        assert client.subscribe("$queue/nothing", qos=1).reason_codes == [0x80]


BURST = """
[[queues]]
filter = "telemetry/#"
name = "burst"
max_messages = 500
overflow = "block"
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_burst_against_a_block_queue_slows_the_producer_and_loses_nothing(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(BURST)
    assert gw.proc is not None
    total = 3000
    payloads = [f"reading-{i}".encode() for i in range(total)]
    acked = [0]
    producer = threading.Thread(target=lambda: acked.__setitem__(
        0, publish_many(gw.port, "telemetry/s1", payloads, ack_timeout=60)))
    producer.start()
    producer.join(3.0)
    assert producer.is_alive(), "the producer was not held back by the full queue"
    rss_while_blocked = rss_kib(gw.proc.pid)
    received: list[bytes] = []
    with connected(gw.port, "drain", MQTT_311) as consumer:
        consumer.subscribe("$queue/burst", qos=1)
        while len(received) < total:
            received.append(consumer.receive(timeout=10).payload)
    producer.join(30)
    assert acked[0] == total
    assert received == payloads  # nothing lost, in order
    assert rss_while_blocked < 200_000


def test_sigkill_loses_no_acknowledged_message(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(JOBS)
    acked: list[bytes] = []
    stop = threading.Event()

    def produce() -> None:
        with RawClient(gw.port, MQTT_311) as producer:
            producer.connect("camera")
            i = 0
            try:
                while not stop.is_set():
                    payload = f"frame-{i}".encode()
                    producer.send_packet(Publish("images/cam", payload, 1, False, False,
                                                 i % 65535 + 1))
                    producer.expect(PubAck, 5)
                    acked.append(payload)
                    i += 1
            except (OSError, AssertionError, TimeoutError):
                return

    thread = threading.Thread(target=produce)
    thread.start()
    while len(acked) < 300:
        time.sleep(0.01)
    gw.kill()
    stop.set()
    thread.join(10)
    gw.start()
    seen: set[bytes] = set()
    with connected(gw.port, "auditor", MQTT_311) as auditor:
        auditor.subscribe("$q/images/+", qos=1)
        while not set(acked) <= seen:
            seen.add(auditor.receive(timeout=10).payload)
        published = {f"frame-{i}".encode() for i in range(len(acked) + 1)}
        assert seen <= published, "a message was delivered that was never published"


def test_a_producer_held_by_a_full_queue_keeps_its_connection_alive(
        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(BURST.replace("500", "1"))
    with RawClient(gw.port, MQTT_311) as producer:
        producer.connect("held", keepalive=1)
        assert producer.publish("telemetry/a", b"fills the queue", qos=1) is not None
        producer.send_packet(Publish("telemetry/a", b"waits", 1, False, False, 2))
        for _ in range(4):  # 4 s: well past 1.5 x keepalive
            producer.send(b"\xc0\x00")
            assert type(producer.read(2)).__name__ == "PingResp"
            time.sleep(1)
        with connected(gw.port, "drain", MQTT_311) as consumer:
            consumer.subscribe("$queue/burst", qos=1)
            assert consumer.receive().payload == b"fills the queue"
            assert producer.expect(PubAck, 5).packet_id == 2
            assert consumer.receive().payload == b"waits"
