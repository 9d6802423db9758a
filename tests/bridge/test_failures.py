"""A bad uplink — nothing listening, wrong credentials, a certificate we cannot trust — is
reported (one log line, `$SYS`, the admin API), retried with backoff, and never gets in the way
of local publish/subscribe. Fixing the config and reloading brings the bridge up."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.bridge.conftest import (
    UpstreamFactory,
    bridge_config,
    bridge_state,
    reload,
    wait_connected,
    wait_until,
)
from tests.conftest import GatewayFactory
from tests.support.certs import make_tls_files
from tests.support.clients import V5, V311, PahoClient, paho_client
from tests.support.procs import GatewayProcess, free_port

RULE = 'pattern = "up/#"\ndirection = "out"'


def assert_local_service_works(gw: GatewayProcess) -> None:
    with paho_client(gw.port, "local-check", V5) as client:
        client.subscribe("local/#", qos=1)
        client.publish("local/ping", b"pong", qos=1)
        assert client.get().payload == b"pong"


def sys_topics(gw: GatewayProcess, prefix: str = "$SYS/broker/bridges/up/") -> dict[str, str]:
    """The bridge's retained `$SYS` topics, as a fresh subscriber receives them."""
    with paho_client(gw.port, "sys-reader", V5) as client:
        client.subscribe(prefix + "#")
        wanted = {"state", "last_error", "connected"}
        seen: dict[str, str] = {}
        while not wanted <= seen.keys():
            message = client.get()
            seen[message.topic.removeprefix(prefix)] = message.payload.decode()
    return seen


def test_unreachable_upstream_is_reported_once_and_retried(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory) -> None:
    port = free_port()
    gw = gateway_factory(bridge_config(port, RULE, reconnect_max=0.2))
    state = wait_until(lambda: (s := bridge_state(gw))["failures"] >= 4 and s,
                       what="several failed attempts")
    assert not state["connected"]
    assert state["last_error"] == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert "connection refused" in sys_topics(gw)["last_error"]
    assert gw.log().count("connection refused") == 1  # one line, not one per retry
    assert_local_service_works(gw)
    with paho_client(gw.port, "producer", V5) as producer:
        producer.publish("up/kept", b"waits in the outbox", qos=1)

    upstream = upstreams(port=port)
    with paho_client(upstream.port, "watcher", V5) as watcher:
        watcher.subscribe("up/#", qos=1)
        wait_connected(gw)
        assert watcher.get().payload == b"waits in the outbox"
    assert "bridge up: connected to" in gw.log() and "failed attempts" in gw.log()
    assert sys_topics(gw)["connected"] == "1"


def test_wrong_credentials_are_reported_and_a_reload_fixes_them(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "site-7", "s3cret"],
                   check=True, capture_output=True)
    upstream = upstreams(extra_config=f"allow_anonymous false\npassword_file {passwords}\n")
    config = bridge_config(upstream.port, RULE, username="site-7", password="wrong")
    gw = gateway_factory(config)
    state = wait_until(lambda: (s := bridge_state(gw))["failures"] >= 3 and s,
                       what="refused attempts")
    assert state["last_error"] == (f"127.0.0.1:{upstream.port} refused the connection: "
                                   "not authorised")
    assert gw.log().count("refused the connection") == 1
    assert sys_topics(gw)["state"] in ("waiting", "connecting")
    assert_local_service_works(gw)

    reload(gw, config.replace('"wrong"', '"s3cret"'))
    wait_connected(gw)
    assert "bridge up: redefined by the new configuration" in gw.log()


def test_tls_failure_is_reported_and_a_trusted_upstream_connects_with_a_client_certificate(
        upstreams: UpstreamFactory, gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    tls_port = free_port()
    upstream = upstreams(extra_config=(
        f"listener {tls_port} 127.0.0.1\ncafile {tls.ca}\ncertfile {tls.server.cert}\n"
        f"keyfile {tls.server.key}\nrequire_certificate true\n"))
    missing = tmp_path / "missing-ca.pem"
    gw = gateway_factory(bridge_config(tls_port, RULE, tls=True, cafile=str(missing)))
    wait_until(lambda: bridge_state(gw)["last_error"] == (
        f"TLS setup failed: cafile {missing}: No such file or directory"), what="a TLS error")

    reload(gw, bridge_config(tls_port, RULE, tls=True, protocol="5.0"))  # the system's CAs
    state = wait_until(lambda: (s := bridge_state(gw))["failures"] >= 2 and s,
                       what="failed TLS handshakes")
    assert state["last_error"].startswith(
        f"cannot connect to 127.0.0.1:{tls_port}: TLS certificate verification failed")
    assert gw.log().count("TLS certificate verification failed") == 1
    assert "TLS certificate verification failed" in sys_topics(gw)["last_error"]
    assert_local_service_works(gw)

    reload(gw, bridge_config(tls_port, RULE, tls=True, protocol="5.0", cafile=str(tls.ca),
                             certfile=str(tls.client.cert), keyfile=str(tls.client.key)))
    wait_connected(gw)
    with paho_client(upstream.port, "watcher", V5) as watcher, \
            paho_client(gw.port, "producer", V5) as producer:
        watcher.subscribe("up/#", qos=1)
        producer.publish("up/secure", b"over TLS", qos=1)
        assert watcher.get().payload == b"over TLS"
    assert bridge_state(gw)["tls"] is True


def test_an_upstream_without_bridge_mode_gets_plain_mqtt_3_1_1(
        gateway_factory: GatewayFactory) -> None:
    upstream = gateway_factory()  # edgeq itself refuses Mosquitto's protocol level 0x84
    gw = gateway_factory(bridge_config(upstream.port, RULE))
    wait_connected(gw)
    assert "does not accept bridge mode" in gw.log()
    watcher = PahoClient(upstream.port, "watcher", V311)
    watcher.connect()
    try:
        watcher.subscribe("up/#", qos=1)
        with paho_client(gw.port, "producer", V5) as producer:
            producer.publish("up/x", b"plain", qos=1)
        assert watcher.get().payload == b"plain"
    finally:
        watcher.disconnect()
