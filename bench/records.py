"""Batch encoding of benchmark PUBLISH packets and fast scanning of received ones.

Every benchmark message has a 64-byte payload: an 8-byte message id (publisher number << 32 |
sequence number), an 8-byte CLOCK_MONOTONIC send time in nanoseconds, and 48 bytes of padding.
All topics of a scenario have the same length, so every PUBLISH a client sends or receives has
the same size. That lets a whole batch be packed by one `struct.pack` call and a whole run of
received packets be checked by one regular expression and unpacked by `struct.iter_unpack`:
the per-message work stays in C, so the generator does not become the bottleneck. Anything that
does not fit the fixed layout (other packet types, properties added by a broker) takes the slow,
general path in `bench.wire`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from bench.wire import V5

PAYLOAD_SIZE = 64
PAYLOAD_FMT = "QQ48x"
PAYLOAD_STRUCT = struct.Struct("!" + PAYLOAD_FMT)
PID_SPACE = 65535
# Packet ids 1..65535 twice over, so any window of a batch is one slice.
_PID_CYCLE = list(range(1, PID_SPACE + 1)) * 2


def message_id(publisher: int, seq: int) -> int:
    return (publisher << 32) | seq


def packet_id_for(seq: int) -> int:
    return seq % PID_SPACE + 1


def payload(publisher: int, seq: int, sent_ns: int) -> bytes:
    return PAYLOAD_STRUCT.pack(message_id(publisher, seq), sent_ns)


def unpack_payload(data: bytes) -> tuple[int, int]:
    """(message id, send time) of a benchmark payload."""
    mid, sent_ns = PAYLOAD_STRUCT.unpack_from(data, 0)
    return int(mid), int(sent_ns)


def _remaining_length(topic_len: int, qos: int, version: int) -> int:
    n = 2 + topic_len + (2 if qos else 0) + (1 if version == V5 else 0) + PAYLOAD_SIZE
    if n > 127:
        raise ValueError("benchmark topics must keep PUBLISH under 128 bytes")
    return n


@dataclass
class PublishBatcher:
    """Packs `count` consecutive PUBLISH packets of one publisher with one struct call."""

    topics: list[bytes]
    qos: int
    version: int
    publisher: int
    _structs: dict[int, struct.Struct] = field(default_factory=dict)
    _templates: dict[int, list[object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {len(t) for t in self.topics}
        if len(lengths) != 1:
            raise ValueError("all topics of a publisher must have the same length")
        self.topic_len = lengths.pop()
        self.remaining = _remaining_length(self.topic_len, self.qos, self.version)
        fields = f"BBH{self.topic_len}s" + ("H" if self.qos else "") + \
            ("B" if self.version == V5 else "") + PAYLOAD_FMT
        self.record_fmt = fields
        self.per_record = 4 + (1 if self.qos else 0) + (1 if self.version == V5 else 0) + 2
        self.record_size = 2 + self.remaining

    def _template(self, count: int) -> tuple[struct.Struct, list[object]]:
        if count not in self._structs:
            self._structs[count] = struct.Struct("!" + self.record_fmt * count)
            one: list[object] = [0x30 | (self.qos << 1), self.remaining, self.topic_len,
                                 self.topics[0]]
            if self.qos:
                one.append(0)
            if self.version == V5:
                one.append(0)
            one += [0, 0]
            self._templates[count] = one * count
        return self._structs[count], self._templates[count]

    def encode(self, seq0: int, count: int, sent_ns: int) -> bytes:
        """PUBLISH packets for sequence numbers seq0 .. seq0+count-1, all stamped `sent_ns`."""
        packer, template = self._template(count)
        args = template.copy()
        k = self.per_record
        if len(self.topics) > 1:
            n = len(self.topics)
            args[3::k] = [self.topics[s % n] for s in range(seq0, seq0 + count)]
        if self.qos:
            off = seq0 % PID_SPACE
            args[4::k] = _PID_CYCLE[off:off + count]
        base = message_id(self.publisher, seq0)
        args[k - 2::k] = range(base, base + count)
        args[k - 1::k] = [sent_ns] * count
        return packer.pack(*args)


class PublishScanner:
    """Finds runs of fixed-size PUBLISH packets in a receive buffer and decodes them in C."""

    def __init__(self, topic_len: int, qos: int, version: int) -> None:
        self.qos = qos
        remaining = _remaining_length(topic_len, qos, version)
        self.record_size = 2 + remaining
        headers = bytes([0x30 | (qos << 1), 0x38 | (qos << 1)])  # with and without DUP
        one = (b"[" + re.escape(headers) + b"]" + re.escape(bytes([remaining]))
               + re.escape(struct.pack("!H", topic_len)) + b".{%d}" % topic_len
               + (b".." if qos else b"") + (b"\\x00" if version == V5 else b"")
               + b".{%d}" % PAYLOAD_SIZE)
        self.run_re = re.compile(b"(?:" + one + b")+", re.S)
        self.pid_offset = 4 + topic_len
        skip = 4 + topic_len + (2 if qos else 0) + (1 if version == V5 else 0)
        self.record_fmt = f"{skip}x{PAYLOAD_FMT}"
        self._structs: dict[int, struct.Struct] = {}

    def match_run(self, buf: bytes, pos: int) -> int:
        """End of the run of fixed-layout PUBLISH packets starting at `pos` (== pos if none)."""
        m = self.run_re.match(buf, pos)
        return m.end() if m else pos

    def decode_run(self, run: bytes) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(message ids, send times) of a run returned by `match_run`."""
        n = len(run) // self.record_size
        unpacker = self._structs.get(n)
        if unpacker is None:
            unpacker = self._structs[n] = struct.Struct("!" + self.record_fmt * n)
        flat = unpacker.unpack(run)
        return flat[0::2], flat[1::2]

    def pubacks(self, run: bytes) -> bytes:
        """The PUBACK for every packet of a QoS 1 run, built with strided slices."""
        n = len(run) // self.record_size
        out = bytearray(4 * n)
        out[0::4] = b"\x40" * n
        out[1::4] = b"\x02" * n
        out[2::4] = run[self.pid_offset::self.record_size]
        out[3::4] = run[self.pid_offset + 1::self.record_size]
        return bytes(out)


PUBACK_RUN = re.compile(b"(?:\x40\x02..)+", re.S)


def count_puback_run(buf: bytes, pos: int) -> int:
    """End of the run of plain 4-byte PUBACKs starting at `pos` (== pos if none)."""
    m = PUBACK_RUN.match(buf, pos)
    return m.end() if m else pos
