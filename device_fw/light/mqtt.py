# The light's MQTT client: umqtt.simple 1.3.4 (vendored unmodified in /lib/umqtt) plus what a
# board left on a wall for months needs and umqtt.simple does not do.
#
# - Deadlines. umqtt.simple blocks without limit (connect, CONNACK, the rest of a packet) and
#   turns the socket back to blocking after every check_msg(). Here every socket operation has
#   a timeout of timeout_ms, so a peer that stops answering raises OSError(ETIMEDOUT) into the
#   light's loop, which reconnects, long before the hardware watchdog would reset the board.
# - Bounded reception. umqtt.simple reads a whole PUBLISH payload into one bytes object; a
#   command bigger than the heap raises MemoryError. Here a payload above max_payload (or a
#   topic above MAX_TOPIC) is read past in SKIP_CHUNK-byte pieces into one preallocated buffer,
#   then reported to on_oversize(topic, size) and acknowledged like any other message, so the
#   gateway does not deliver it again. A topic in `streams` is the exception: its payload, of
#   any size, is handed to streams[topic](client, size), which reads it with stream() in
#   SKIP_CHUNK-byte pieces (an update bundle goes to flash that way).
# - Keepalive that notices a dead link. ping() sends a PINGREQ; check_alive(limit_ms) raises
#   LinkDead when nothing (PINGRESP or anything else) has come back within limit_ms of it. A
#   half-open link (a router reboot, an expired NAT entry) accepts writes and never answers.
# - Holding messages. With ack = False a PUBLISH is handed over but not acknowledged, so the
#   gateway keeps it (the light sets this while a hardware error stops it from applying one).
# - Deferred acknowledgements. The callback may set defer = True: that message's PUBACK waits
#   for release_acks() (the light's state is not on flash yet). PUBACKs keep the order of the
#   PUBLISHes (MQTT 3.1.1, 4.6), so once one waits, every later one waits behind it. Deferred
#   PUBACKs die with the connection, and the gateway delivers those messages again.
import errno
import time

import usocket as socket
from umqtt.simple import MQTTClient, MQTTException

MAX_TOPIC = 128
SKIP_CHUNK = 256
TIMEOUT_ERRNOS = (errno.ETIMEDOUT, errno.EAGAIN)


class LinkDead(OSError):
    pass


def is_timeout(e):
    return isinstance(e, OSError) and not isinstance(e, LinkDead) and bool(e.args) \
        and e.args[0] in TIMEOUT_ERRNOS


class Client(MQTTClient):
    def __init__(self, client_id, server, port, user, password, keepalive, ssl, ssl_params,
                 timeout_ms, max_payload, on_oversize):
        super().__init__(client_id, server, port, user, password, keepalive, ssl, ssl_params)
        self.timeout_s = timeout_ms / 1000
        self.max_payload = max_payload
        self.on_oversize = on_oversize
        self.ping_sent_at = None
        self.ack = True
        self.streams = {}
        self.defer = False
        self.deferred = []
        self._raw = None
        self._scratch = bytearray(SKIP_CHUNK)

    # --- deadlines ------------------------------------------------------------------------

    def _blocking_with_deadline(self):
        try:
            self.sock.settimeout(self.timeout_s)
        except AttributeError:  # a TLS socket: the timeout lives on the TCP socket under it
            self.sock.setblocking(True)
            self._raw.settimeout(self.timeout_s)

    def _read_exact(self, n):
        data = self.sock.read(n)
        if not data or len(data) != n:
            raise OSError(-1)  # end of stream mid-packet, as umqtt.simple reports it
        return data

    def connect(self, clean_session=True):
        addr = socket.getaddrinfo(self.server, self.port)[0][-1]
        self._raw = self.sock = socket.socket()
        self.sock.settimeout(self.timeout_s)
        self.sock.connect(addr)
        if self.ssl:
            import ssl

            self.sock = ssl.wrap_socket(self.sock, **self.ssl_params)
            self._blocking_with_deadline()
        self._send_connect(clean_session)
        resp = self._read_exact(4)
        if resp[0] != 0x20 or resp[1] != 0x02:
            raise MQTTException("expected CONNACK, got 0x%02x" % resp[0])
        if resp[3] != 0:
            raise MQTTException(resp[3])
        self.ping_sent_at = None
        return resp[2] & 1

    def _send_connect(self, clean_session):
        flags = clean_session << 1
        size = 10 + 2 + len(self.client_id)
        if self.user is not None:
            size += 2 + len(self.user) + 2 + len(self.pswd)
            flags |= 0xC0
        if self.lw_topic:
            size += 2 + len(self.lw_topic) + 2 + len(self.lw_msg)
            flags |= 0x4 | self.lw_qos << 3 | self.lw_retain << 5
        self.sock.write(bytes([0x10]) + encode_length(size))
        self.sock.write(b"\x00\x04MQTT\x04" + bytes([flags, self.keepalive >> 8,
                                                       self.keepalive & 0xFF]))
        self._send_str(self.client_id)
        if self.lw_topic:
            self._send_str(self.lw_topic)
            self._send_str(self.lw_msg)
        if self.user is not None:
            self._send_str(self.user)
            self._send_str(self.pswd)

    # --- keepalive ------------------------------------------------------------------------

    def ping(self):
        super().ping()
        if self.ping_sent_at is None:
            self.ping_sent_at = time.ticks_ms()

    def check_alive(self, limit_ms):
        sent = self.ping_sent_at
        if sent is not None and time.ticks_diff(time.ticks_ms(), sent) > limit_ms:
            raise LinkDead("no PINGRESP within %d ms" % limit_ms)

    # --- reception ------------------------------------------------------------------------

    def wait_msg(self):
        res = self.sock.read(1)
        self._blocking_with_deadline()
        if res is None:
            return None
        if res == b"":
            raise OSError(-1)
        self.ping_sent_at = None  # the gateway answered: the link is alive
        op = res[0]
        if op == 0xD0:  # PINGRESP
            if self._read_exact(1) != b"\x00":
                raise MQTTException("malformed PINGRESP")
            return None
        if op & 0xF0 != 0x30:
            return op
        self._receive_publish(op)
        return None

    def _receive_publish(self, op):
        if op & 6 == 4:
            raise MQTTException("QoS 2 PUBLISH: not supported")
        left = self._recv_len()
        topic_len = _u16(self._read_exact(2))
        left -= 2 + topic_len
        topic = None
        if topic_len <= MAX_TOPIC:
            topic = self._read_exact(topic_len)
        else:
            self._skip(topic_len)
        pid = None
        if op & 6:
            pid = _u16(self._read_exact(2))
            left -= 2
        if left < 0:
            raise MQTTException("malformed PUBLISH")
        self.defer = False
        if topic is not None and topic in self.streams:
            self.streams[topic](self, left)
        elif topic is None or left > self.max_payload:
            self._skip(left)
            self.on_oversize(topic, left)
        else:
            self.cb(topic, self._read_exact(left))
        if pid is None or not self.ack:
            return
        if self.defer or self.deferred:
            self.deferred.append(pid)
        else:
            self._puback(pid)

    def release_acks(self):
        """Send the deferred PUBACKs, in order."""
        while self.deferred:
            self._puback(self.deferred[0])
            self.deferred.pop(0)

    def _puback(self, pid):
        self.sock.write(bytes([0x40, 0x02, pid >> 8, pid & 0xFF]))

    def _skip(self, n):
        self.stream(n, _discard)

    def stream(self, n, sink):
        """Read the next n bytes in pieces into one buffer, handing each piece to sink()."""
        view = memoryview(self._scratch)
        while n > 0:
            got = self.sock.readinto(view[:min(n, SKIP_CHUNK)])
            if not got:
                raise OSError(-1)
            sink(view[:got])
            n -= got

    def close(self):
        sock = self.sock
        self.sock = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def encode_length(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _discard(piece):
    pass


def _u16(b):
    return b[0] << 8 | b[1]
