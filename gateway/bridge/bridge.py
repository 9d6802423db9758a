"""One bridge: a connection to an upstream broker kept up with backoff, its outbox and inbound.

The bridge runs as one task: connect (TLS, CONNECT, SUBSCRIBE to the `in` rules), join the
outbox queues, wait until the connection ends, wait a backoff delay, start again. Whatever goes
wrong upstream — unreachable host, refused credentials, TLS failure, a dropped link — becomes
`last_error`, one log line when the error (or the state) changes rather than one per retry, and
a `$SYS` update; local service never depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Literal

from gateway.bridge.backoff import Backoff
from gateway.bridge.client import (
    UNACCEPTABLE_PROTOCOL_VERSION,
    Callbacks,
    ClientOptions,
    MqttClient,
    UpstreamError,
)
from gateway.bridge.host import Host
from gateway.bridge.inbound import Inbound
from gateway.bridge.outbox import Outbox
from gateway.bridge.rules import TopicMap
from gateway.bridge.status import Rate
from gateway.config import BridgeSpec, split_address
from gateway.mqtt.packets import MQTT_5, MQTT_311, Subscription

log = logging.getLogger("gateway.bridge")
State = Literal["stopped", "connecting", "connected", "waiting"]


class Bridge:
    def __init__(self, spec: BridgeSpec, broker: Host,
                 on_change: Callable[[Bridge], None] = lambda b: None) -> None:
        self.spec = spec
        self.name = spec.name
        self.host, self.port = split_address(spec.address)
        self.local_id = f"$bridge/{spec.name}"
        self.remote_id = spec.client_id or f"{socket.gethostname()}.{spec.name}"
        self.topics = TopicMap(spec)
        self.outbox = Outbox(self.local_id, broker.engine, self.topics, broker.clock,
                             self._problem)
        self.inbound = Inbound(self.local_id, broker, self.topics)
        self.backoff = Backoff(spec.reconnect_min, spec.reconnect_max)
        self.bridge_mode = spec.try_private and spec.protocol == "3.1.1"
        self.state: State = "stopped"
        self.last_error = ""
        self.last_error_at: float | None = None
        self.failures = 0  # consecutive failed attempts
        self.connects = 0
        self.connected_since: float | None = None
        self.next_attempt_at: float | None = None
        self.client: MqttClient | None = None
        self.send_rate, self.receive_rate = Rate(), Rate()
        self._on_change = on_change
        self._logged = ""  # the error text last logged at warning level
        self._task: asyncio.Task[None] | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name=f"bridge {self.name}")

    def stop(self) -> None:
        """Close the uplink and stop retrying; unacknowledged messages stay in the outbox."""
        if self._task is not None:
            self._task.cancel()
        if self.client is not None:
            self.client.close("the gateway is stopping the bridge")
        self._disconnected()
        self._set_state("stopped")

    async def wait_stopped(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._connection()
            except Exception as e:  # a bug must not end the retries; say it loudly, once
                log.exception("bridge %s: unexpected error", self.name)
                if self.client is not None:
                    self.client.abort(f"unexpected error: {e}")
                self._disconnected()
                self._error(f"unexpected error: {e!r}")
            delay = self.backoff.next_delay()
            self.next_attempt_at = time.time() + delay
            self._set_state("waiting")
            await asyncio.sleep(delay)
            self.next_attempt_at = None

    async def _connection(self) -> None:
        """One attempt, and the life of the connection if it succeeds."""
        self._set_state("connecting")
        closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            client = MqttClient(self._options(), Callbacks(
                on_message=self.inbound.on_message, on_ack=self.outbox.upstream_ack,
                on_close=lambda why: _settle(closed, why),
                on_writable=self.outbox.writable))
            self.client = client
            self.inbound.attach(client)
            await client.connect()
            await self._subscribe(client)
        except UpstreamError as e:
            if self.client is not None:
                self.client.abort(str(e))
            self._disconnected()
            self._failed(e)
            return
        self._connected(client)
        why = await closed
        self._lost(why)

    def _options(self) -> ClientOptions:
        s = self.spec
        return ClientOptions(
            self.host, self.port, self.remote_id, MQTT_5 if s.protocol == "5.0" else MQTT_311,
            s.username or None, s.password.encode() if s.password else None, s.keepalive,
            s.clean_start, s.session_expiry, self._tls(), None,
            bridge_flag=self.bridge_mode)

    def _tls(self) -> ssl.SSLContext | None:
        """A fresh context per attempt, so that a fixed certificate file is picked up."""
        s = self.spec
        if not s.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=s.cafile or None)
        except (OSError, ssl.SSLError) as e:
            raise UpstreamError(f"TLS setup failed: cafile {s.cafile}: {_file_error(e)}") from None
        try:
            if s.certfile:
                context.load_cert_chain(s.certfile, s.keyfile or None)
        except (OSError, ssl.SSLError) as e:
            raise UpstreamError(f"TLS setup failed: certfile {s.certfile}"
                                f"{' / keyfile ' + s.keyfile if s.keyfile else ''}: "
                                f"{_file_error(e)}") from None
        if s.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _subscribe(self, client: MqttClient) -> None:
        wanted = self.topics.subscriptions()
        if not wanted:
            return
        v5 = self.spec.protocol == "5.0"
        subs = [Subscription(f, qos, no_local=v5, retain_as_published=v5) for f, qos in wanted]
        codes = await client.subscribe(subs)
        for (topic_filter, _), code in zip(wanted, codes, strict=False):
            if code >= 0x80:
                self._problem(f"the upstream refused the subscription to {topic_filter} "
                              f"(0x{code:02X})")

    # -- state changes ---------------------------------------------------------------------

    def _connected(self, client: MqttClient) -> None:
        self.connects += 1
        self.connected_since = time.time()
        n = self.failures
        after = f" after {n} failed attempt{'s' if n > 1 else ''}" if n else ""
        mode = f"MQTT {self.spec.protocol}" + (", bridge mode" if self.bridge_mode else "")
        log.info("bridge %s: connected to %s:%d as %s (%s)%s", self.name, self.host, self.port,
                 self.remote_id, mode, after)
        self.failures = 0
        self._logged = ""
        self._set_state("connected")
        self.outbox.attach(client, self.spec.max_inflight)

    def _lost(self, why: str) -> None:
        lasted = time.time() - (self.connected_since or time.time())
        self._disconnected()
        if lasted >= self.spec.reconnect_max:
            self.backoff.reset()  # a long-lived link: come back quickly; a flapping one: slowly
        self._error(f"connection to {self.host}:{self.port} lost: {why}")

    def _disconnected(self) -> None:
        self.client = None
        self.connected_since = None
        self.outbox.detach()
        self.inbound.detach()

    def _failed(self, error: UpstreamError) -> None:
        self.failures += 1
        if error.code == UNACCEPTABLE_PROTOCOL_VERSION and self.bridge_mode:
            self.bridge_mode = False
            log.info("bridge %s: the upstream does not accept bridge mode (try_private); "
                     "connecting as a plain MQTT 3.1.1 client", self.name)
            self.backoff.reset()
            return
        self._error(str(error))

    def _error(self, text: str) -> None:
        """Record an error; log it once, not once per retry."""
        self.last_error, self.last_error_at = text, time.time()
        if text != self._logged:
            self._logged = text
            log.warning("bridge %s: %s; retrying with backoff (%g to %gs)", self.name, text,
                        self.spec.reconnect_min, self.spec.reconnect_max)
        else:
            log.debug("bridge %s: %s (attempt %d)", self.name, text, self.failures)
        self._on_change(self)

    def _problem(self, text: str) -> None:
        """A problem that does not end the connection (refused message or subscription)."""
        self.last_error, self.last_error_at = text, time.time()
        if text != self._logged:
            self._logged = text
            log.warning("bridge %s: %s", self.name, text)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self._on_change(self)

    # -- reporting -------------------------------------------------------------------------

    def tick(self, dt: float) -> None:
        self.send_rate.update(self.outbox.sent, dt)
        self.receive_rate.update(self.inbound.received, dt)

    def record(self) -> dict[str, Any]:
        """Everything but the outbox figures (`status.outbox_figures` adds those)."""
        now = time.time()
        return {
            "name": self.name, "address": self.spec.address, "protocol": self.spec.protocol,
            "client_id": self.remote_id, "tls": self.spec.tls, "state": self.state,
            "connected": self.state == "connected", "connected_since": self.connected_since,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
            "failures": self.failures, "connects": self.connects,
            "next_attempt_in": (round(max(0.0, self.next_attempt_at - now), 1)
                                if self.next_attempt_at else None),
            "sent": self.outbox.sent, "received": self.inbound.received,
            "skipped": self.outbox.skipped, "refused": self.outbox.refused,
            "inflight": len(self.outbox.inflight),
            "send_rate": round(self.send_rate.value, 2),
            "receive_rate": round(self.receive_rate.value, 2),
        }


def _settle(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


def _file_error(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error).lower().replace("_", " ")
    return getattr(error, "strerror", None) or str(error)
