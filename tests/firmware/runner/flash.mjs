// The board's flash filesystem, kept across "power cycles" (separate runs of mpyrun.mjs).
//
// The interpreter's filesystem is emscripten's MEMFS, gone when the process ends. With
// --flash DIR, the top-level files of "/" that the device code creates or changes are mirrored
// into DIR, and DIR's files are put back into "/" at the next start. The mirror is brought up
// to date before every bridge call (socket, sleep) and before every console line, so whatever
// the device did before a line the test has seen is on "flash"; a kill in between loses only
// what a power cut right after a write would lose on a board.

import fs from "node:fs";
import path from "node:path";

export function openFlash(FS, dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const name of fs.readdirSync(dir)) {
    FS.writeFile("/" + name, fs.readFileSync(path.join(dir, name)));
  }
  const seen = new Map(); // name -> version (mtime and size) last mirrored or copied in
  for (const name of topFiles(FS)) seen.set(name, version(FS, name));
  const mirrored = new Set(fs.readdirSync(dir));

  return function sync() {
    const now = new Set();
    for (const name of topFiles(FS)) {
      now.add(name);
      const v = version(FS, name);
      if (seen.get(name) === v) continue; // unchanged, or a firmware file copied in at start
      seen.set(name, v);
      mirrored.add(name);
      const tmp = path.join(dir, "." + name + ".tmp");
      fs.writeFileSync(tmp, FS.readFile("/" + name));
      fs.renameSync(tmp, path.join(dir, name));
    }
    for (const name of mirrored) {
      if (now.has(name)) continue;
      mirrored.delete(name);
      seen.delete(name);
      fs.rmSync(path.join(dir, name), { force: true });
    }
  };
}

function version(FS, name) {
  const st = FS.stat("/" + name);
  return `${st.mtime.getTime()}:${st.size}`;
}

function topFiles(FS) {
  return FS.readdir("/").filter((name) => {
    if (name === "." || name === "..") return false;
    try {
      return FS.isFile(FS.stat("/" + name).mode);
    } catch {
      return false;
    }
  });
}
