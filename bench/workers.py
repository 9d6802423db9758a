"""Load-generator processes and the measured window around them.

A phase is a set of worker processes (forked), each driving some publishers and subscribers
from one selector loop. The coordinator waits until every worker is connected and subscribed,
samples the broker, releases all workers at once, and samples the broker again when the last
worker reports done: that interval is the measured window. Counts and message ids travel back
after the window closes, so checking them costs the brokers nothing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import selectors
import time
import traceback
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from bench import metrics
from bench.brokers import Broker
from bench.clients import Flow, Publisher, PublisherSpec, Subscriber, SubscriberSpec
from bench.wire import ProtocolError

CTX = mp.get_context("fork")
LINGER_S = 0.2  # keep reading after done, to catch duplicates that arrive late
QOS0_IDLE_S = 1.0  # at QoS 0, give up on missing messages after this long without progress


class PhaseError(Exception):
    """A worker failed (connection refused, protocol error, broker gone)."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """The clients one load-generator process drives."""

    publishers: tuple[PublisherSpec, ...] = ()
    subscribers: tuple[SubscriberSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Phase:
    workers: tuple[WorkerSpec, ...]
    expected: int = 0  # messages all subscribers together must receive; 0: none
    window: int = 2000  # end-to-end window (sent, not yet received), 0: off
    timeout: float = 60.0
    lossy: bool = False  # QoS 0: finish when messages stop coming, count the missing as lost


@dataclass
class WorkerResult:
    published: int = 0
    acked: int = 0
    ids: bytes = b""  # array('Q') of every message id received
    latencies: bytes = b""  # array('q') of sampled latencies in ns
    cpu: float = 0.0  # this process's CPU seconds over the window
    last_receive: float = 0.0  # time.monotonic() of the last message received in the window
    error: str | None = None


@dataclass
class PhaseResult:
    window: metrics.Window
    workers: list[WorkerResult]
    timed_out: bool
    received: int

    @property
    def published(self) -> int:
        return sum(w.published for w in self.workers)

    @property
    def acked(self) -> int:
        return sum(w.acked for w in self.workers)

    def ids(self) -> array[int]:
        out = array("Q")
        for w in self.workers:
            out.frombytes(w.ids)
        return out

    def latencies(self) -> array[int]:
        out = array("q")
        for w in self.workers:
            out.frombytes(w.latencies)
        return out

    @property
    def generator_cpu(self) -> float:
        return sum(w.cpu for w in self.workers)

    @property
    def seconds(self) -> float:
        """Start to the last message received, or to the end of the window if none was.

        At QoS 0 the workers wait a while for messages that were dropped: not part of the rate.
        """
        last = max((w.last_receive for w in self.workers), default=0.0)
        if last > self.window.start.wall:
            return min(self.window.seconds, last - self.window.start.wall)
        return self.window.seconds


@dataclass
class _Shared:
    flow: Flow
    go: Any  # multiprocessing Event
    stop: Any  # RawValue('b'): the coordinator gave up
    pubs_left: Any  # Value('q'): publishers not yet done, all workers together
    phase: Phase
    port: int
    slots: dict[int, tuple[int, int]] = field(default_factory=dict)  # worker -> first slots


def _finished(pubs: list[Publisher], subs: list[Subscriber], sh: _Shared,
              idle: list[float]) -> bool:
    if not all(p.done() for p in pubs) or any(s.pending for s in subs):
        return False
    if not sh.phase.expected:
        return True
    got = sh.flow.total_received()
    if got >= sh.phase.expected:
        return True
    if sh.phase.lossy and sh.pubs_left.value == 0:
        if got != idle[1]:
            idle[:] = [time.monotonic(), got]
        return time.monotonic() - idle[0] > QOS0_IDLE_S
    return False


def _drive(pubs: list[Publisher], subs: list[Subscriber], sh: _Shared, until: float,
           linger: bool = False) -> bool:
    """The selector loop: flush writers, read readers, until finished (True) or `until`.

    With `linger`, keep going until `until` even when finished (late duplicates show up).
    """
    clients: list[Publisher | Subscriber] = [*pubs, *subs]
    sel = selectors.DefaultSelector()
    masks: dict[int, int] = {}
    for c in clients:
        assert c.sock is not None
        sel.register(c.sock, selectors.EVENT_READ, c)
        masks[id(c)] = selectors.EVENT_READ
    idle = [time.monotonic(), -1.0]
    pubs_running = set(range(len(pubs)))
    while time.monotonic() < until and not sh.stop.value:
        wrote = False
        for c in clients:
            if c.wants_write():
                wrote = c.flush() or wrote
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.blocked else 0)
            if mask != masks[id(c)]:
                assert c.sock is not None
                sel.modify(c.sock, mask, c)
                masks[id(c)] = mask
        for key, mask in sel.select(0 if wrote else 0.001):
            if mask & selectors.EVENT_READ:
                key.data.on_readable()
        for i in [i for i in pubs_running if pubs[i].done()]:
            pubs_running.discard(i)
            with sh.pubs_left.get_lock():
                sh.pubs_left.value -= 1
        if not linger and _finished(pubs, subs, sh, idle):
            sel.close()
            return True
    sel.close()
    return linger


def _worker(index: int, spec: WorkerSpec, sh: _Shared, conn: Connection) -> None:
    result = WorkerResult()
    try:
        pub_slot, sub_slot = sh.slots[index]
        pubs = [Publisher(p, sh.port, pub_slot + i, sh.flow) for i, p in enumerate(spec.publishers)]
        subs = [Subscriber(s, sub_slot + i, sh.flow) for i, s in enumerate(spec.subscribers)]
        for s in subs:
            if not s.spec.late:
                s.connect(sh.port)
        conn.send("ready")
        sh.go.wait()
        began = os.times()
        for s in subs:
            if s.spec.late:
                s.connect(sh.port)
        finished = _drive(pubs, subs, sh, time.monotonic() + sh.phase.timeout)
        ended = os.times()
        conn.send("done" if finished else "timeout")
        result.cpu = (ended.user + ended.system) - (began.user + began.system)
        result.last_receive = max((s.received.last_ns for s in subs), default=0) / 1e9
        if finished:
            _drive(pubs, subs, sh, time.monotonic() + LINGER_S, linger=True)
        _collect(result, pubs, subs)
    except (OSError, ProtocolError) as exc:  # the broker refused or went away: FAILED row
        result.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug in the harness: the same, with the traceback
        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    conn.send(result)
    conn.close()


def _collect(result: WorkerResult, pubs: list[Publisher], subs: list[Subscriber]) -> None:
    result.published = sum(p.next_seq for p in pubs)
    result.acked = sum(p.acked for p in pubs)
    ids, lat = array("Q"), array("q")
    for s in subs:
        ids.extend(s.received.ids)
        lat.extend(s.received.latencies())
    result.ids, result.latencies = ids.tobytes(), lat.tobytes()


def _shared(phase: Phase, port: int) -> _Shared:
    n_pubs = sum(len(w.publishers) for w in phase.workers)
    n_subs = sum(len(w.subscribers) for w in phase.workers)
    flow = Flow(CTX.RawArray("q", max(1, n_pubs)), CTX.RawArray("q", max(1, n_subs)),
                phase.window if phase.expected else 0)
    sh = _Shared(flow, CTX.Event(), CTX.RawValue("b", 0), CTX.Value("q", n_pubs), phase, port)
    p_slot = s_slot = 0
    for i, w in enumerate(phase.workers):
        sh.slots[i] = (p_slot, s_slot)
        p_slot += len(w.publishers)
        s_slot += len(w.subscribers)
    return sh


def run_phase(phase: Phase, broker: Broker) -> PhaseResult:
    """Run one phase against `broker` and return what was measured."""
    sh = _shared(phase, broker.port)
    procs, conns = [], []
    for i, spec in enumerate(phase.workers):
        parent, child = CTX.Pipe(duplex=False)
        proc = CTX.Process(target=_worker, args=(i, spec, sh, child), daemon=True)
        proc.start()
        child.close()
        procs.append(proc)
        conns.append(parent)
    try:
        return _measure(phase, broker, sh, conns)
    finally:
        sh.stop.value = 1
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _await(conns: dict[int, Connection], wanted: tuple[str, ...], broker: Broker,
           until: float, results: dict[int, WorkerResult]) -> dict[int, str] | None:
    """Wait until every worker in `conns` sent one of `wanted` (or its result).

    Returns what each one sent, or None on timeout. A worker's error raises PhaseError.
    """
    waiting, said = dict(conns), {}
    while waiting:
        if time.monotonic() > until:
            return None
        broker.check_alive()
        ready = wait(list(waiting.values()), timeout=0.1)
        for i, conn in list(waiting.items()):
            if conn not in ready:
                continue
            msg = conn.recv()
            if isinstance(msg, WorkerResult):
                results[i] = msg
                if msg.error:
                    raise PhaseError(f"{msg.error}; broker log: {broker.log_tail(2)}")
                said[i] = "result"
            elif msg in wanted:
                said[i] = msg
            else:
                continue
            del waiting[i]
    return said


def _measure(phase: Phase, broker: Broker, sh: _Shared, conns: list[Connection]) -> PhaseResult:
    results: dict[int, WorkerResult] = {}
    everyone = dict(enumerate(conns))
    if _await(everyone, ("ready",), broker, time.monotonic() + 30, results) is None:
        raise PhaseError("load clients could not connect and subscribe within 30 s")
    start = metrics.sample(broker.pid)
    sh.go.set()
    said = _await(everyone, ("done", "timeout"), broker, time.monotonic() + phase.timeout + 10,
                  results)
    end = metrics.sample(broker.pid)
    received = sh.flow.total_received()
    timed_out = said is None or "timeout" in said.values()
    if timed_out:
        sh.stop.value = 1
    missing = {i: c for i, c in everyone.items() if i not in results}
    _await(missing, (), broker, time.monotonic() + 60, results)
    workers = [results.get(i, WorkerResult(error="no result")) for i in range(len(conns))]
    for w in workers:
        if w.error:
            raise PhaseError(f"{w.error}; broker log: {broker.log_tail(2)}")
    return PhaseResult(metrics.Window(start, end), workers, timed_out, received)
