// Main-thread side of the blocking socket bridge, and the small host services the test
// doubles need. Everything here is synchronous, because MicroPython calls it synchronously.
//
// A call posts {op, seq, ...} to the network worker and sleeps in Atomics.wait until the
// worker stores that same seq in the shared flag word. Matching on seq (not just "the flag
// changed") means a late reply after a safety timeout is never taken for the next call's.

import fs from "node:fs";
import { Worker, MessageChannel, receiveMessageOnPort } from "node:worker_threads";

const SAFETY_MS = 120_000; // a blocking call that outlives this is a bug in the runner

export async function startNetBridge() {
  const flagBuffer = new SharedArrayBuffer(4);
  const flag = new Int32Array(flagBuffer);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL("./networker.mjs", import.meta.url), {
    workerData: { flagBuffer, port: port2 },
    transferList: [port2],
  });
  await new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  worker.unref();
  let seq = 0;

  function call(op, args) {
    const my = (seq = (seq % 0x7ffffff0) + 1);
    Atomics.store(flag, 0, 0);
    port1.postMessage({ op, seq: my, ...args });
    const deadline = Date.now() + SAFETY_MS;
    for (;;) {
      const cur = Atomics.load(flag, 0);
      if (cur === my) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`netbridge: no reply to ${op} after ${SAFETY_MS} ms`);
      Atomics.wait(flag, 0, cur, left);
    }
    for (;;) {
      const r = receiveMessageOnPort(port1);
      if (r === undefined) throw new Error(`netbridge: reply to ${op} announced but missing`);
      if (r.message.seq === my) return r.message.value;
    }
  }

  // Integers crossing the FFI are int32, so times go over as strings.
  const t0 = Date.now();
  const netbridge = {
    ping: () => call("ping", {}),
    getaddrinfo: (host) => call("getaddrinfo", { host: String(host) }),
    socket: () => call("socket", {}),
    connect: (id, host, port, timeout_ms) => call("connect", { id, host, port, timeout_ms }),
    read: (id, n, mode, timeout_ms, ahead) => call("read", { id, n, mode, timeout_ms, ahead }),
    write: (id, hex) => call("write", { id, hex: String(hex) }),
    available: (id) => call("available", { id }),
    close: (id) => call("close", { id }),
    drop: () => call("drop", {}),
    sleep_ms: (ms) => {
      if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
      return null;
    },
    elapsed_ms: () => String(Date.now() - t0),
  };
  return { netbridge, worker };
}

// Host services for the machine/network test doubles: an event log the test reads, and
// control files the test writes (e.g. to take the emulated Wi-Fi down).
export function hostServices(env) {
  return {
    getenv: (name) => {
      const v = env[String(name)];
      return v === undefined ? null : v;
    },
    append: (path, text) => {
      fs.appendFileSync(String(path), String(text));
      return null;
    },
    read: (path) => {
      try {
        return fs.readFileSync(String(path), "utf8");
      } catch {
        return null;
      }
    },
    now_ms: () => String(Date.now()),
  };
}
