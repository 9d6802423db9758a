"""Opening the listeners: plain TCP, TLS (optionally requiring client certificates), and MQTT
over WebSocket (`ws`/`wss`), all served by the same `Connection` protocol."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from gateway.broker.connection import Connection
from gateway.config import ConfigError, Listener

if TYPE_CHECKING:
    from gateway.broker.server import Broker


def tls_context(listener: Listener) -> ssl.SSLContext:
    """Server TLS context; client certificates required or merely verified when offered."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(listener.certfile, listener.keyfile)
        if listener.cafile:
            context.load_verify_locations(listener.cafile)
            context.verify_mode = (ssl.CERT_REQUIRED if listener.require_certificate
                                   else ssl.CERT_OPTIONAL)
        elif listener.require_certificate:
            raise ConfigError(f"listener {listener.address}: require_certificate needs cafile")
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"listener {listener.address}: cannot load TLS files: {e}") from None
    return context


async def serve(broker: Broker, listener: Listener) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    context = tls_context(listener) if listener.kind in ("tls", "wss") else None
    name = f"{listener.kind}://{listener.address}"
    if listener.kind in ("ws", "wss"):
        from gateway.broker.websocket import WebSocketProtocol  # wsproto only where it serves

        def factory() -> asyncio.Protocol:
            return WebSocketProtocol(Connection(broker, name), listener.path)
    else:
        def factory() -> asyncio.Protocol:
            return Connection(broker, name)
    try:
        return await loop.create_server(factory, listener.host, listener.port, ssl=context,
                                        backlog=4096, reuse_address=True)
    except OSError as e:
        raise ConfigError(f"listener {name}: cannot listen: {e.strerror}") from None
