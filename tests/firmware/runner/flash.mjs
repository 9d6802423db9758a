// The board's flash filesystem, kept across "power cycles" (separate runs of mpyrun.mjs).
//
// The interpreter's filesystem is emscripten's MEMFS, gone when the process ends. With
// --flash DIR, every file that the device code creates, changes or deletes (anywhere but the
// emulator's own /dev, /proc, /tmp and /home) is mirrored into DIR, and DIR's files are put back
// at the next start, over the files copied in with --copy (a copied-in file the device deletes
// comes back with the next --copy, as after a new deploy). The mirror is brought up to date
// before every bridge call (socket, sleep) and before every console line, so whatever the
// device did before a line the test has seen is on "flash"; a kill in between loses only what a
// power cut right after a write would lose on a board.

import fs from "node:fs";
import path from "node:path";

const NOT_FLASH = new Set(["dev", "proc", "tmp", "home"]);

export function openFlash(FS, dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const rel of hostFiles(dir, "")) {
    mkdirs(FS, path.posix.dirname("/" + rel));
    FS.writeFile("/" + rel, fs.readFileSync(path.join(dir, rel)));
  }
  const seen = new Map(); // path -> version (mtime and size) last mirrored or copied in
  for (const rel of deviceFiles(FS, "")) seen.set(rel, version(FS, rel));
  const mirrored = new Set(hostFiles(dir, ""));

  return function sync() {
    const now = new Set();
    for (const rel of deviceFiles(FS, "")) {
      now.add(rel);
      const v = version(FS, rel);
      if (seen.get(rel) === v) continue; // unchanged, or a firmware file copied in at start
      seen.set(rel, v);
      mirrored.add(rel);
      const host = path.join(dir, rel);
      fs.mkdirSync(path.dirname(host), { recursive: true });
      fs.writeFileSync(host + ".mirror-tmp", FS.readFile("/" + rel));
      fs.renameSync(host + ".mirror-tmp", host);
    }
    for (const rel of seen.keys()) {
      if (now.has(rel)) continue;
      seen.delete(rel);
      if (mirrored.delete(rel)) fs.rmSync(path.join(dir, rel), { force: true });
    }
  };
}

function version(FS, rel) {
  const st = FS.stat("/" + rel);
  return `${st.mtime.getTime()}:${st.size}`;
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

function deviceFiles(FS, rel) {
  const out = [];
  for (const name of FS.readdir("/" + rel)) {
    if (name === "." || name === ".." || (rel === "" && NOT_FLASH.has(name))) continue;
    const child = rel ? `${rel}/${name}` : name;
    const mode = FS.stat("/" + child).mode;
    if (FS.isDir(mode)) out.push(...deviceFiles(FS, child));
    else if (FS.isFile(mode)) out.push(child);
  }
  return out;
}

function hostFiles(dir, rel) {
  const out = [];
  for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const child = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isDirectory()) out.push(...hostFiles(dir, child));
    else if (!ent.name.endsWith(".mirror-tmp")) out.push(child);
  }
  return out;
}
