#!/usr/bin/env node
// Run MicroPython code as a device would: the real MicroPython interpreter (WebAssembly build,
// @micropython/micropython-webassembly-pyscript) with blocking TCP sockets provided through a
// worker thread (bridge.mjs, networker.mjs) and test doubles for `machine` and `network`.
//
// usage: node mpyrun.mjs [--copy HOST[:DEST]]... [--flash DIR] [--heap BYTES] [-c CODE]
//
//   --copy HOST[:DEST]  copy a host file or directory into the device filesystem (DEST defaults
//                       to "/"; a directory's contents are copied into DEST). Repeatable.
//   --flash DIR         keep the files the device writes in "/" across runs (flash.mjs)
//   --heap BYTES        the MicroPython heap (default 4 MiB; an ESP32 without PSRAM has ~110 KB)
//   -c CODE             run CODE instead of the device start-up sequence (/boot.py, /main.py).
//
// The board support modules in ../mplib (usocket, socket, machine, network) are installed in
// /lib first, like modules frozen into a board's firmware. Environment variables starting with
// MPYRUN_ are visible to them (MPYRUN_HWLOG: JSON-lines file of hardware events;
// MPYRUN_WIFI: control file for the emulated access point).
//
// Exit status: 0 when the code returns, the SystemExit code, or 1 on an uncaught exception
// (its traceback goes to stderr, as a board prints it on the REPL).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { startNetBridge, hostServices } from "./bridge.mjs";
import { openFlash } from "./flash.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MPLIB = path.join(HERE, "..", "mplib");

function usage(msg) {
  process.stderr.write(`mpyrun: ${msg}\nusage: node mpyrun.mjs [--copy HOST[:DEST]]... [--flash DIR] [--heap BYTES] [-c CODE]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { copies: [], heap: 4 << 20, code: null, flash: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === "--copy") {
      const v = next();
      const at = v.lastIndexOf(":");
      opts.copies.push(at > 0 ? [v.slice(0, at), v.slice(at + 1) || "/"] : [v, "/"]);
    } else if (a === "--heap") opts.heap = parseInt(next(), 10);
    else if (a === "--flash") opts.flash = next();
    else if (a === "-c") opts.code = next();
    else usage(`unknown argument ${a}`);
  }
  return opts;
}

function mkdirs(FS, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      FS.mkdir(cur);
    } catch {
      // already there
    }
  }
}

// Copy a host file or directory tree into emscripten's in-memory filesystem.
function copyIn(FS, host, dest) {
  const st = fs.statSync(host);
  if (st.isDirectory()) {
    mkdirs(FS, dest);
    for (const name of fs.readdirSync(host)) {
      if (name === "__pycache__" || name.startsWith(".")) continue;
      copyIn(FS, path.join(host, name), path.posix.join(dest, name));
    }
  } else {
    const target = dest.endsWith("/") ? path.posix.join(dest, path.basename(host)) : dest;
    mkdirs(FS, path.posix.dirname(target));
    FS.writeFile(target, fs.readFileSync(host));
  }
}

// Runs before the device code: the sleep functions of the builtin `time` module busy-wait in
// this port, so they are rebound to a real sleep (Atomics.wait) that costs no CPU.
const PRELUDE = `
import sys, time, _netbridge
sys.path[:] = ['', '.frozen', '/lib']
def _sleep(s):
    _netbridge.sleep_ms(int(s * 1000))
def _sleep_us(us):
    if us >= 1000:
        _netbridge.sleep_ms(us // 1000)
time.sleep_ms = _netbridge.sleep_ms
time.sleep = _sleep
time.sleep_us = _sleep_us
del _sleep, _sleep_us
`;

// The start-up sequence of a MicroPython board: /boot.py, then /main.py, in one namespace.
const STARTUP = `
def _startup():
    import os
    g = {'__name__': '__main__'}
    for name in ('boot.py', 'main.py'):
        try:
            os.stat('/' + name)
        except OSError:
            continue
        with open('/' + name) as f:
            src = f.read()
        exec(compile(src, name, 'exec'), g)
_startup()
`;

function exitCodeOf(err) {
  if (err?.name !== "PythonError") return null;
  if (err.type !== "SystemExit") return 1;
  const m = /SystemExit: (-?\d+)/.exec(err.message);
  return m ? parseInt(m[1], 10) & 0xff : 0;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let syncFlash = () => {};
  const out = (fd) => (line) => {
    syncFlash();
    fs.writeSync(fd, line + "\n");
  };
  const mp = await loadMicroPython({ heapsize: opts.heap, stdout: out(1), stderr: out(2) });
  const { netbridge } = await startNetBridge();
  netbridge.ping(); // the worker is up before the device code runs
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("MPYRUN_")));
  const synced = Object.fromEntries(Object.entries(netbridge).map(([name, fn]) => [name, (...a) => {
    syncFlash();
    return fn(...a);
  }]));
  mp.registerJsModule("_netbridge", synced);
  mp.registerJsModule("_host", hostServices(env));

  copyIn(mp.FS, MPLIB, "/lib");
  for (const [host, dest] of opts.copies) {
    if (!fs.existsSync(host)) usage(`--copy: no such file or directory: ${host}`);
    copyIn(mp.FS, host, dest);
  }
  if (opts.flash) syncFlash = openFlash(mp.FS, opts.flash);

  let code = 0;
  try {
    mp.runPython(PRELUDE);
    mp.runPython(opts.code ?? STARTUP);
  } catch (err) {
    code = exitCodeOf(err);
    if (code === null) {
      process.stderr.write(`mpyrun: ${String(err?.stack ?? err).slice(0, 2000)}\n`);
      code = 70;
    } else if (err.type !== "SystemExit") {
      process.stderr.write(err.message);
    }
  }
  syncFlash();
  process.exit(code);
}

main();
