"""Hostile and careless clients against a live gateway: each is dealt with on its own while a
well-behaved client keeps working.

Slowloris sockets that never finish CONNECT, a subscriber that never reads, a burst of
connections, a huge subscription tree and a deep wildcard fan-out. The 10,000 idle connections
are in test_idle_connections.py, the fuzzer in test_fuzz_live.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gateway.mqtt import codec
from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Connect,
    PubAck,
    Publish,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from tests.reliability.burst import burst_connect
from tests.reliability.conftest import assert_no_crash_in_log, open_fds, rss_kib
from tests.support.clients import RawClient, connected
from tests.support.procs import GatewayProcess

CONFIG = """
[mqtt]
connect_timeout = 1
client_output_buffer = 262144
max_queued_messages = 1000
# the huge-subscription tests measure the cost of 50,000 filters, beyond the default limit
# (tests/broker/test_limits.py covers the limit)
max_subscriptions_per_client = 0
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(data_dir=tmp_path_factory.mktemp("hostile") / "var",
                             config_text=CONFIG)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def alive(gw: GatewayProcess) -> Iterator[GatewayProcess]:
    """The shared gateway; after the test it must still be up and have logged no traceback."""
    yield gw
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway died"
    assert_no_crash_in_log(gw)


def round_trip(port: int, tag: str) -> float:
    """A well-behaved client publishes to itself at QoS 1; the time it took."""
    start = time.monotonic()
    with connected(port, f"good-{tag}", MQTT_5) as good:
        good.subscribe(f"good/{tag}", qos=1)
        good.send_packet(Publish(f"good/{tag}", b"fine", 1, False, False, 7))
        got = sorted((good.read(), good.read()), key=lambda p: type(p).__name__)
        assert isinstance(got[0], PubAck) and isinstance(got[1], Publish), got
        assert got[1].payload == b"fine"
        good.send_packet(PubAck(got[1].packet_id))
        good.disconnect()
    return time.monotonic() - start


def open_sockets(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the gateway closes `sock` within `timeout` (what it had sent is read away)."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        pass
    return False


# ---------------------------------------------------------------------------- slowloris

def test_slowloris_connections_are_dropped_after_the_connect_timeout(
        alive: GatewayProcess) -> None:
    """200 sockets: silent, a byte of CONNECT at a time, or a CONNECT header announcing a body
    that never comes. All are closed after connect_timeout (1 s, checked once a second)."""
    gw = alive
    connect = codec.encode(Connect("loris", MQTT_311, True, 60), MQTT_311)
    socks = open_sockets(gw.port, 200)
    start = time.monotonic()
    try:
        for i, s in enumerate(socks):
            if i % 3 == 1:
                s.sendall(connect[:2])
            elif i % 3 == 2:
                s.sendall(b"\x10\xff\xff\x03")  # 64 KiB announced, never sent
        for step in range(4):  # keep dribbling while the good client works
            for s in socks[1::3]:
                with contextlib.suppress(OSError):
                    s.sendall(connect[2 + step:3 + step])
            assert round_trip(gw.port, f"loris-{step}") < 1.0
            time.sleep(0.25)
        deadline = start + 1 + 1 + 2  # timeout, tick granularity, slack
        closed = sum(closed_by_peer(s, max(deadline - time.monotonic(), 0.05)) for s in socks)
        assert closed == len(socks), f"{len(socks) - closed} slow sockets still open"
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------- never reads

def test_a_subscriber_that_never_reads_is_disconnected_and_others_get_everything(
        alive: GatewayProcess) -> None:
    gw = alive
    assert gw.proc is not None
    rss_before = rss_kib(gw.proc.pid)
    stuck = RawClient(gw.port, MQTT_311)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert stuck.connect("never-reads").reason_code == 0
    stuck.subscribe("flood/#", qos=0)
    reader = connected(gw.port, "reads", MQTT_311)
    reader.subscribe("flood/#", qos=0)
    received: list[bytes] = []

    def read_all() -> None:
        while len(received) < total:
            received.append(reader.receive(timeout=10).payload)

    # 16 MB: beyond what the kernel socket buffers (tcp_wmem, up to 4 MB) and the 256 KiB
    # output buffer can hold for a client that reads nothing
    total, payload = 2000, b"x" * 8192
    thread = threading.Thread(target=read_all, daemon=True)
    thread.start()
    with connected(gw.port, "flooder", MQTT_311) as flooder:
        for i in range(total):
            while i - len(received) > 20:  # as fast as the reader reads: it never falls behind
                time.sleep(0.001)
            flooder.send_packet(Publish("flood/a", i.to_bytes(4, "big") + payload, 0, False,
                                        False, 0))
        flooder.publish("flood/done", b"", qos=1)  # everything before it was routed
    thread.join(30)
    assert len(received) >= total, f"the reading subscriber got {len(received)} of {total}"
    assert [int.from_bytes(p[:4], "big") for p in received[:total]] == list(range(total))
    assert closed_by_peer(stuck.sock, 5), "the subscriber that never reads is still connected"
    assert any("does not read its messages" in line for line in gw.log().splitlines())
    assert rss_kib(gw.proc.pid) - rss_before < 64 * 1024
    assert round_trip(gw.port, "after-stuck") < 1.0
    stuck.close()
    reader.close()


def test_a_qos1_subscriber_that_never_reads_has_a_bounded_backlog(alive: GatewayProcess) -> None:
    """QoS 1 to a client that reads nothing: in flight up to its receive maximum, then queued
    up to mqtt.max_queued_messages (1000 here), then dropped; nobody else waits."""
    gw = alive
    assert gw.proc is not None
    stuck = connected(gw.port, "never-acks", MQTT_5)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.subscribe("flood1/#", qos=1)
    rss_before = rss_kib(gw.proc.pid)
    with connected(gw.port, "flooder1", MQTT_5) as flooder:
        for start in range(0, 5000, 50):
            for i in range(start, start + 50):
                flooder.send_packet(Publish("flood1/a", b"y" * 2048, 1, False, False,
                                            i % 50 + 1))
            for _ in range(50):
                flooder.read(10)  # every PUBACK comes back: the producer is never held up
    assert rss_kib(gw.proc.pid) - rss_before < 48 * 1024
    assert round_trip(gw.port, "after-stuck1") < 1.0
    stuck.close()


# ---------------------------------------------------------------------------- floods

def test_a_burst_of_2000_connections_is_served(alive: GatewayProcess) -> None:
    gw = alive
    assert gw.proc is not None
    fds_before = open_fds(gw.proc.pid)
    start = time.monotonic()
    socks = burst_connect(gw.port, 2000, "burst")
    elapsed = time.monotonic() - start
    try:
        assert round_trip(gw.port, "in-burst") < 1.0
    finally:
        for s in socks:
            s.close()
    print(f"\n2000 CONNECT/CONNACK in {elapsed:.2f}s")
    deadline = time.monotonic() + 10
    while open_fds(gw.proc.pid) > fds_before + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(gw.proc.pid) <= fds_before + 5, "descriptors leaked after the burst"


# ---------------------------------------------------------------------------- topic trees

def subscribe_many(client: RawClient, filters: list[str], per_packet: int = 500) -> None:
    for n, start in enumerate(range(0, len(filters), per_packet)):
        chunk = filters[start:start + per_packet]
        client.subscribe(*[Subscription(f, 0) for f in chunk], packet_id=n % 65535 + 1)


def test_50k_distinct_subscriptions(alive: GatewayProcess) -> None:
    gw = alive
    assert gw.proc is not None
    filters = [f"tree/{a}/{b}/{c}" for a in range(50) for b in range(50) for c in range(20)]
    rss_before = rss_kib(gw.proc.pid)
    start = time.monotonic()
    with connected(gw.port, "forest", MQTT_311) as forest:
        subscribe_many(forest, filters)
        subscribed = time.monotonic() - start
        with connected(gw.port, "tree-pub", MQTT_311) as publisher:
            start = time.monotonic()
            for topic in ("tree/0/0/0", "tree/49/49/19", "tree/25/7/3", "tree/none/0/0"):
                publisher.publish(topic, b"leaf", qos=1)
            for topic in ("tree/0/0/0", "tree/49/49/19", "tree/25/7/3"):
                assert forest.receive().topic == topic
            routed = time.monotonic() - start
        forest.expect_silence(0.2)
        grown = rss_kib(gw.proc.pid) - rss_before
        for n, start_at in enumerate(range(0, len(filters), 500)):
            forest.send_packet(Unsubscribe(n + 1, filters[start_at:start_at + 500]))
            forest.read()
    print(f"\n50,000 subscriptions in {subscribed:.2f}s, +{grown // 1024} MiB; "
          f"4 publishes routed in {routed * 1000:.0f} ms")
    assert subscribed < 30 and routed < 1.0
    assert grown < 200 * 1024
    assert round_trip(gw.port, "after-tree") < 1.0


def test_a_persistent_session_with_many_subscriptions_one_at_a_time(
        alive: GatewayProcess) -> None:
    """20,000 SUBSCRIBE packets of one filter each, from a persistent session: each writes its
    own row (rewriting the whole list every time was quadratic: 3,000 took 5 s), and all of
    them are back after a restart."""
    gw = alive
    n = 20_000
    start = time.monotonic()
    with connected(gw.port, "collector", MQTT_311, clean_start=False) as collector:
        for i in range(n):
            collector.send_packet(Subscribe(i % 65535 + 1, [Subscription(f"coll/{i}", 1)]))
        for _ in range(n):
            collector.read(10)
        elapsed = time.monotonic() - start
        collector.send_packet(Unsubscribe(1, [f"coll/{i}" for i in range(1, n, 2)]))
        collector.read()
        collector.disconnect()
    print(f"\n{n:,} one-filter SUBSCRIBEs on a persistent session in {elapsed:.2f}s")
    assert elapsed < 10
    gw.stop()
    gw.start()
    with connected(gw.port, "collector", MQTT_311, clean_start=False) as collector:
        with connected(gw.port, "coll-pub", MQTT_311) as publisher:
            for i in (0, 1, n - 2, n - 1):
                publisher.publish(f"coll/{i}", b"kept", qos=1)
        assert {collector.receive().topic for _ in range(2)} == {"coll/0", f"coll/{n - 2}"}
        collector.expect_silence(0.3)
    with connected(gw.port, "collector", MQTT_311, clean_start=True) as collector:
        collector.disconnect()  # ends the session
    assert round_trip(gw.port, "after-collector") < 1.0


def test_deep_wildcard_fan_out(alive: GatewayProcess) -> None:
    """200 subscribers, each with 25 overlapping wildcard filters that all match one topic:
    one publish reaches each subscriber exactly once."""
    gw = alive
    topic = "fan/a/b/c/d/e"
    patterns = ["#", "fan/#", "+/#", "fan/+/#", "fan/a/#", "+/+/#", "fan/+/+/#", "+/a/+/c/#",
                "fan/a/b/#", "+/+/+/+/+/+", "fan/+/+/+/+/+", "+/a/b/c/d/e", "fan/a/b/c/#",
                "fan/a/b/c/d/#", "fan/a/b/c/d/e", "fan/a/b/c/d/e/#", "+/+/b/+/d/+", "fan/+/b/#",
                "+/+/+/#", "+/+/+/+/#", "+/+/+/+/+/#", "fan/a/+/+/+/+", "fan/a/b/+/+/e",
                "+/a/b/c/+/#", "fan/+/+/c/+/e"]
    subs = [connected(gw.port, f"fan-{i}", MQTT_5) for i in range(200)]
    try:
        for s in subs:
            s.subscribe(*[Subscription(p, 1) for p in patterns])
        start = time.monotonic()
        with connected(gw.port, "fan-pub", MQTT_5) as publisher:
            publisher.publish(topic, b"to everyone", qos=1)
        for s in subs:
            assert s.receive().payload == b"to everyone"
        elapsed = time.monotonic() - start
        for s in subs[:10]:
            s.expect_silence(0.05)
        print(f"\nfan-out: 1 publish x 25 overlapping filters -> 200 clients in "
              f"{elapsed * 1000:.0f} ms")
        assert elapsed < 3
    finally:
        for s in subs:
            s.close()
    assert round_trip(gw.port, "after-fan") < 1.0

