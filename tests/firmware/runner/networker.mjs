// The network worker: owns every TCP socket of the emulated device and never blocks.
//
// The MicroPython interpreter runs on Node's main thread and makes *blocking* socket calls.
// While it waits (Atomics.wait in bridge.mjs) the main thread's event loop is frozen, so all
// asynchronous I/O lives here. Each request arrives on a MessagePort as a plain object
// {op, seq, ...}; the reply is posted back and then announced through the shared flag word:
//
//     port.postMessage({seq, value}); Atomics.store(flag, 0, seq); Atomics.notify(flag, 0);
//
// Reply values: data as a lowercase hex string ("" = end of stream), null for "nothing yet"
// (non-blocking read), a number for counts, or an errno name such as "ECONNREFUSED" for a
// failure. Errno names (not numbers) cross the bridge so the Python side can use the
// interpreter's own errno table.

import net from "node:net";
import dns from "node:dns";
import { parentPort, workerData } from "node:worker_threads";

const flag = new Int32Array(workerData.flagBuffer);
const port = workerData.port;

const sockets = new Map(); // id -> state
let nextId = 1;

function reply(seq, value) {
  port.postMessage({ seq, value });
  Atomics.store(flag, 0, seq);
  Atomics.notify(flag, 0);
}

function errName(err) {
  if (err && typeof err.code === "string" && /^E[A-Z]+$/.test(err.code)) return err.code;
  return "EIO";
}

function newState() {
  return { sock: null, chunks: [], buffered: 0, ended: false, err: null, pending: null };
}

function take(s, max) {
  const parts = [];
  let got = 0;
  while (s.chunks.length && got < max) {
    const c = s.chunks[0];
    const want = max - got;
    if (c.length <= want) {
      parts.push(c);
      got += c.length;
      s.chunks.shift();
    } else {
      parts.push(c.subarray(0, want));
      s.chunks[0] = c.subarray(want);
      got += want;
    }
  }
  s.buffered -= got;
  return Buffer.concat(parts).toString("hex");
}

// Complete the pending read of `s` if it can be completed now.
function pump(s) {
  const p = s.pending;
  if (!p) return;
  const need = p.mode === "exact" ? p.n : 1;
  if (s.buffered >= need) {
    finish(s, take(s, Math.max(p.n, Math.min(p.ahead, s.buffered))));
  } else if (s.ended || s.err) {
    if (s.buffered > 0) finish(s, take(s, s.buffered));
    else if (s.err && s.err !== "EOF") finish(s, s.err);
    else finish(s, "");
  }
}

function finish(s, value) {
  const p = s.pending;
  s.pending = null;
  if (p.timer) clearTimeout(p.timer);
  reply(p.seq, value);
}

function attach(s, sock) {
  s.sock = sock;
  sock.setNoDelay(true);
  sock.on("data", (d) => {
    s.chunks.push(d);
    s.buffered += d.length;
    pump(s);
  });
  sock.on("end", () => {
    s.ended = true;
    pump(s);
  });
  sock.on("error", (e) => {
    s.err = errName(e);
    pump(s);
  });
  sock.on("close", () => {
    s.ended = true;
    pump(s);
  });
}

const ops = {
  ping: (m) => reply(m.seq, "pong"),

  getaddrinfo: (m) => {
    dns.lookup(m.host, { family: 4 }, (err, address) => reply(m.seq, err ? "EAI" : address));
  },

  socket: (m) => {
    const id = nextId++;
    sockets.set(id, newState());
    reply(m.seq, id);
  },

  connect: (m) => {
    const s = sockets.get(m.id);
    if (!s) return reply(m.seq, "EBADF");
    if (s.sock) return reply(m.seq, "EISCONN");
    let done = false;
    const sock = net.connect({ host: m.host, port: m.port });
    const timer = m.timeout_ms > 0 ? setTimeout(() => fail("ETIMEDOUT"), m.timeout_ms) : null;
    function fail(code) {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      sock.destroy();
      s.err = code;
      reply(m.seq, code);
    }
    sock.once("error", (e) => fail(errName(e)));
    sock.once("connect", () => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      sock.removeAllListeners("error");
      attach(s, sock);
      reply(m.seq, 0);
    });
  },

  // n: bytes wanted; mode "exact" (stream read(n): n bytes or EOF) or "some" (recv: >= 1);
  // timeout_ms: -1 blocks, 0 is non-blocking, > 0 is a deadline; ahead: read-ahead allowance.
  read: (m) => {
    const s = sockets.get(m.id);
    if (!s) return reply(m.seq, "EBADF");
    if (!s.sock && !s.err) return reply(m.seq, "ENOTCONN");
    s.pending = { seq: m.seq, n: m.n, mode: m.mode, ahead: m.ahead || 0, timer: null };
    pump(s);
    if (!s.pending || s.pending.seq !== m.seq) return;
    if (m.timeout_ms === 0) {
      // Non-blocking: hand over what is there (stream semantics), else "nothing yet".
      finish(s, s.buffered > 0 ? take(s, Math.min(Math.max(m.n, m.ahead || 0), s.buffered)) : null);
    } else if (m.timeout_ms > 0) {
      s.pending.timer = setTimeout(() => {
        if (s.pending && s.pending.seq === m.seq) finish(s, "ETIMEDOUT");
      }, m.timeout_ms);
    }
  },

  write: (m) => {
    const s = sockets.get(m.id);
    if (!s) return reply(m.seq, "EBADF");
    if (s.err && s.err !== "EOF") return reply(m.seq, s.err);
    if (!s.sock || s.sock.destroyed || s.sock.writableEnded) return reply(m.seq, s.sock ? "EPIPE" : "ENOTCONN");
    const buf = Buffer.from(m.hex, "hex");
    s.sock.write(buf);
    reply(m.seq, buf.length);
  },

  available: (m) => {
    const s = sockets.get(m.id);
    if (!s) return reply(m.seq, "EBADF");
    reply(m.seq, s.buffered > 0 ? s.buffered : s.ended || s.err ? -1 : 0);
  },

  close: (m) => {
    const s = sockets.get(m.id);
    if (s) {
      sockets.delete(m.id);
      if (s.sock) s.sock.destroy();
    }
    reply(m.seq, 0);
  },

  // Fault injection, driven from the host side of the tests (see bridge.mjs):
  // "drop" resets every open connection, as a Wi-Fi loss would.
  drop: (m) => {
    let n = 0;
    for (const s of sockets.values()) {
      if (s.sock && !s.sock.destroyed) {
        s.sock.destroy();
        s.err = "ECONNRESET";
        n++;
        pump(s);
      }
    }
    reply(m.seq, n);
  },
};

port.on("message", (m) => {
  const fn = ops[m.op];
  if (!fn) return reply(m.seq, "EINVAL");
  try {
    fn(m);
  } catch (e) {
    reply(m.seq, errName(e));
  }
});

parentPort.postMessage("ready");
