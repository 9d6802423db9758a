"""A fuzzer against a LIVE gateway over real sockets (the codec alone is fuzzed in tests/mqtt).

Each example opens a connection and sends a stream: random bytes, a valid CONNECT followed by
valid packets (including queue consumption, shared subscriptions, topic aliases, QoS 2 flows
with made-up packet ids), or such a stream with bytes flipped, inserted, deleted or cut. The
stream may arrive in pieces; the client then half-closes or vanishes. Whatever the broker
answers is read until it closes the connection.

After every few examples a well-behaved client does a QoS 1 round trip through a queue and a
subscription; at the end the process must be alive and its log free of tracebacks (asyncio only
logs an exception raised in a protocol callback: it would not kill the process).

`EDGEQ_FUZZ_EXAMPLES` sets the number of examples (default 300); `make test-slow` runs
`EDGEQ_FUZZ_EXAMPLES_SLOW` (default 5000).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import encode
from gateway.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Packet,
    PubAck,
    Publish,
    PubRec,
    PubRel,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from tests.mqtt.strategies import after_connect, connects, packet_ids, payloads, qos
from tests.mqtt.test_fuzz import mutated
from tests.reliability.conftest import assert_no_crash_in_log, env_int
from tests.support.clients import connected
from tests.support.procs import GatewayProcess

CONFIG = """
[mqtt]
connect_timeout = 2
max_packet_size = 65536
topic_alias_maximum = 4
receive_maximum = 8

[[queues]]
filter = "jobs/#"
name = "jobs"
max_messages = 50
overflow = "reject_new"

[[queues]]
filter = "lv/+"
name = "lv"
last_value_key = "json:k|user_property:k|topic_level:1"

[[queues]]
filter = "dev/+/cmd"
template = true
max_messages = 5
overflow = "drop_oldest"
"""

# Filters and topics that reach the interesting code: queues, templates, shared groups, $SYS.
FILTERS = ["$q/jobs/#", "$queue/jobs", "$queue/lv", "$q/dev/d1/cmd", "$q/dev/+/cmd",
           "$queue/fuzzq/fz/#", "$queue/jobs/other", "$q/nothing", "$share/g/jobs/#",
           "$share/g/#", "$SYS/#", "#", "+/+", "jobs/+", "lv/#", "dev/+/cmd", "$queue/",
           "$q/", "$share//x"]
TOPICS = ["jobs/a", "jobs/b/c", "lv/k1", "lv/k2", "dev/d1/cmd", "dev/d2/cmd", "fz/x",
          "$SYS/fake", "plain", "a/b"]

stats = {"examples": 0, "bytes": 0}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(data_dir=tmp_path_factory.mktemp("fuzz") / "var", config_text=CONFIG)
    gw.start()
    yield gw
    gw.stop()
    assert_no_crash_in_log(gw)


def queue_packets(version: int) -> st.SearchStrategy[Packet]:
    props = st.fixed_dictionaries({}, optional={
        "user_property": st.just([("k", "a")]), "topic_alias": st.integers(1, 6),
        "message_expiry_interval": st.integers(0, 3)}) if version == MQTT_5 else st.just({})
    publish = st.builds(lambda t, p, q, r, pid, pr: Publish(t, p, q, r, False, pid if q else 0,
                                                             pr),
                        st.sampled_from(TOPICS), payloads | st.just(b'{"k": "x"}'), qos,
                        st.booleans(), packet_ids, props)
    subscribe = st.builds(Subscribe, packet_ids, st.lists(
        st.builds(Subscription, st.sampled_from(FILTERS), qos), min_size=1, max_size=3))
    unsubscribe = st.builds(Unsubscribe, packet_ids,
                            st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3))
    acks = st.one_of(st.builds(PubAck, st.integers(1, 10)), st.builds(PubRec, st.integers(1, 10)),
                     st.builds(PubRel, st.integers(1, 10)))
    return st.one_of(publish, subscribe, unsubscribe, acks)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([MQTT_311, MQTT_5]))
    kind = draw(st.sampled_from(["random", "valid", "mutated", "mutated"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    packets: list[Packet] = [draw(connects(version))]
    packets += draw(st.lists(st.one_of(queue_packets(version), after_connect(version)),
                             max_size=8))
    data = b"".join(encode(p, version) for p in packets)
    return draw(mutated(data)) if kind == "mutated" else data


def exchange(port: int, data: bytes, cuts: list[int], half_close: bool) -> None:
    """Send `data` in pieces, then half-close (or vanish) and read until the broker closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        pieces = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
        with contextlib.suppress(OSError):
            for a, b in itertools.pairwise(pieces):
                sock.sendall(data[a:b])
            if not half_close:
                return
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                if not sock.recv(65536):
                    return
            raise AssertionError(f"the broker kept a half-closed connection open: {data!r}")


def good_round_trip(port: int) -> None:
    """A well-behaved client still gets through a queue and a subscription."""
    with connected(port, "good-citizen", MQTT_5) as good:
        good.subscribe("good/#", qos=1)
        tag = f"{time.monotonic_ns()}".encode()
        good.send_packet(Publish("good/x", tag, 1, False, False, 1))
        got = [good.read(), good.read()]
        assert {type(p) for p in got} == {PubAck, Publish}, got
        publish = next(p for p in got if isinstance(p, Publish))
        assert publish.payload == tag
        good.send_packet(PubAck(publish.packet_id))
        good.disconnect()


def fuzz(live: GatewayProcess, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=streams(), cuts=st.lists(st.integers(0, 10_000), max_size=3),
           half_close=st.booleans())
    def one(data: bytes, cuts: list[int], half_close: bool) -> None:
        exchange(live.port, data, cuts, half_close)
        stats["examples"] += 1
        stats["bytes"] += len(data)
        if stats["examples"] % 25 == 0:
            good_round_trip(live.port)
            assert live.proc is not None and live.proc.poll() is None, "the gateway died"

    before = stats["examples"]
    start = time.monotonic()
    one()
    good_round_trip(live.port)
    assert live.proc is not None and live.proc.poll() is None, "the gateway died"
    assert_no_crash_in_log(live)
    print(f"\nlive fuzz: {stats['examples'] - before} cases ({stats['bytes']} bytes) in "
          f"{time.monotonic() - start:.1f}s; gateway alive, no traceback")


def test_fuzzed_streams_never_hurt_the_broker_or_other_clients(live: GatewayProcess) -> None:
    fuzz(live, env_int("EDGEQ_FUZZ_EXAMPLES", 300))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fuzzed_streams_long(live: GatewayProcess) -> None:
    fuzz(live, env_int("EDGEQ_FUZZ_EXAMPLES_SLOW", 5000))
