"""Listeners: MQTT over WebSocket (`--listen ws://...`, next to TCP) and TLS with optional or
required client certificates."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from gateway.mqtt.packets import MQTT_311
from tests.broker.conftest import ADMIN_ANY_PORT
from tests.support.certs import TlsFiles, make_tls_files
from tests.support.clients import (
    TIMEOUT,
    V5,
    V311,
    PahoClient,
    RawClient,
    ServerClosed,
    connected,
    paho_client,
    tls_context,
)
from tests.support.procs import GatewayProcess, free_port, wait_for_port

# --------------------------------------------------------------------------- WebSocket


@pytest.fixture(scope="module")
def ws_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, int]]:
    """A gateway on TCP and on WebSocket: `--listen` given twice."""
    ws_port = free_port()
    gw = GatewayProcess(data_dir=tmp_path_factory.mktemp("ws") / "var",
                        extra_args=["--listen", f"ws://127.0.0.1:{ws_port}/mqtt",
                                    *ADMIN_ANY_PORT])
    gw.start()
    try:
        wait_for_port(ws_port)
        yield gw, ws_port
    finally:
        gw.stop()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["3.1.1", "5.0"])
def test_websocket_and_tcp_clients_talk_to_each_other(ws_gateway: tuple[GatewayProcess, int],
                                                      protocol: MQTTProtocolVersion) -> None:
    gw, ws_port = ws_gateway
    with paho_client(ws_port, "ws-client", protocol,
                     transport="websockets") as ws, \
            paho_client(gw.port, "tcp-client", protocol) as tcp:
        ws.subscribe("from/tcp", 1)
        tcp.subscribe("from/ws", 1)
        tcp.publish("from/tcp", "hello ws", 1)
        ws.publish("from/ws", "hello tcp", 2)
        assert ws.get().payload == b"hello ws"
        assert tcp.get().payload == b"hello tcp"
        big = bytes(range(256)) * 256  # 64 KiB: several frames and reads
        tcp.publish("from/tcp", big, 1)
        assert ws.get().payload == big


def test_websocket_will_on_drop(ws_gateway: tuple[GatewayProcess, int]) -> None:
    gw, ws_port = ws_gateway
    with connected(gw.port, "watcher") as watcher:
        watcher.subscribe("ws/will")
        ws = PahoClient(ws_port, "ws-dying", V311, transport="websockets")
        ws.client.will_set("ws/will", "gone")
        ws.connect()
        ws.drop()
        assert watcher.receive().payload == b"gone"


def test_websocket_on_another_path_is_refused(ws_gateway: tuple[GatewayProcess, int]) -> None:
    _, ws_port = ws_gateway
    with socket.create_connection(("127.0.0.1", ws_port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /other HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 404")


# --------------------------------------------------------------------------- TLS


@dataclass
class ListenersFromConfig(GatewayProcess):
    """A gateway whose listeners all come from its config file (no `--listen`): the only way
    to give a TLS listener its certificate files."""

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--listen")
        return cmd[:at] + cmd[at + 2:]


@dataclass
class TlsGateway:
    gw: GatewayProcess
    required_port: int  # client certificate required
    optional_port: int  # client certificate verified when offered
    files: TlsFiles


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    tmp_path = tmp_path_factory.mktemp("tls")
    files = make_tls_files(tmp_path / "tls")
    port, required, optional = free_port(), free_port(), free_port()
    config = f"""
[[listeners]]
address = "127.0.0.1:{port}"

[[listeners]]
address = "127.0.0.1:{required}"
kind = "tls"
certfile = "{files.server.cert}"
keyfile = "{files.server.key}"
cafile = "{files.ca}"
require_certificate = true

[[listeners]]
address = "127.0.0.1:{optional}"
kind = "tls"
certfile = "{files.server.cert}"
keyfile = "{files.server.key}"
cafile = "{files.ca}"
"""
    gw = ListenersFromConfig(data_dir=tmp_path / "var", config_text=config, port=port,
                             extra_args=list(ADMIN_ANY_PORT))
    gw.start()
    try:
        wait_for_port(required)
        wait_for_port(optional)
        yield TlsGateway(gw, required, optional, files)
    finally:
        gw.stop()


def _tls_paho(port: int, files: TlsFiles, client_id: str, with_cert: bool) -> PahoClient:
    client = PahoClient(port, client_id, V5)
    client.client.tls_set(str(files.ca), str(files.client.cert) if with_cert else None,
                          str(files.client.key) if with_cert else None)
    return client


def test_tls_with_a_client_certificate(tls_gateway: TlsGateway) -> None:
    t = tls_gateway
    sub = _tls_paho(t.required_port, t.files, "tls-sub", with_cert=True)
    sub.connect()
    try:
        sub.subscribe("secure/#", 1)
        with paho_client(t.gw.port, "plain-pub") as pub:
            pub.publish("secure/a", "over tls", 1)
        assert sub.get().payload == b"over tls"
    finally:
        sub.disconnect()


def _refused(port: int, context: ssl.SSLContext) -> None:
    """The broker refuses this TLS client: no CONNACK ever arrives."""
    try:
        client = RawClient(port, MQTT_311, tls=context)
    except (ssl.SSLError, ConnectionResetError):
        return  # refused during the handshake (TLS 1.2)
    with client:
        try:
            connack = client.connect("no-cert")
        except (ssl.SSLError, ServerClosed, ConnectionResetError, BrokenPipeError):
            return  # refused right after it (TLS 1.3 alerts arrive on the first read)
        raise AssertionError(f"accepted without a valid client certificate: {connack}")


def test_required_client_certificate_refuses_a_client_without_one(
        tls_gateway: TlsGateway) -> None:
    t = tls_gateway
    _refused(t.required_port, tls_context(str(t.files.ca)))


def test_required_client_certificate_refuses_an_untrusted_one(tls_gateway: TlsGateway) -> None:
    t = tls_gateway
    _refused(t.required_port, tls_context(str(t.files.ca), str(t.files.stranger.cert),
                                          str(t.files.stranger.key)))
    with RawClient(t.required_port, MQTT_311,  # and the listener still serves good clients
                   tls=tls_context(str(t.files.ca), str(t.files.client.cert),
                                   str(t.files.client.key))) as good:
        assert good.connect("good").reason_code == 0


def test_optional_client_certificate_lets_a_client_without_one_in(
        tls_gateway: TlsGateway) -> None:
    t = tls_gateway
    with RawClient(t.optional_port, MQTT_311, tls=tls_context(str(t.files.ca))) as client:
        assert client.connect("anonymous-tls").reason_code == 0
    paho_no_cert = _tls_paho(t.optional_port, t.files, "paho-no-cert", with_cert=False)
    paho_no_cert.connect()
    paho_no_cert.disconnect()


def test_plain_mqtt_on_the_tls_port_is_refused(tls_gateway: TlsGateway) -> None:
    with RawClient(tls_gateway.optional_port, MQTT_311) as plain, \
            pytest.raises((ServerClosed, ConnectionResetError, TimeoutError)):
        plain.connect("plain")
    with connected(tls_gateway.gw.port, "tcp-still-fine", MQTT_311):
        pass
