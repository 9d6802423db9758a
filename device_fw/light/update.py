# Application updates over MQTT: a new light/ package, received on the update topic, verified,
# installed in /app/light for main.py to start, and kept only once it has connected.
#
# A bundle (made by `edgeq device update`) is one line of JSON, then the files' bytes in order:
#   {"version": "0.3.0", "files": [["light/app.mpy", 9310], ...], "sha256": "<hex>"}
# It streams from the socket straight to /app.new, SKIP_CHUNK bytes at a time, so its size is
# bounded by the flash, not the heap (MAX_BUNDLE, to be safe). Nothing replaces the running code
# until the SHA-256 of everything received matches the manifest. Then /app.new becomes /app (the
# update before it, if it was kept, becomes /app.prev) and /update.json says "trial".
# main.py starts a trial update a few times; light/app.py calls confirm() once the new code has
# connected, which makes it "good". main.py rolls back a trial that keeps failing.
# The SHA-256 catches a damaged bundle, not a malicious one: who may publish on the update topic
# is the gateway's ACL to decide.
import hashlib
import json
import os

from ubinascii import hexlify

APP = "/app"
NEW = "/app.new"
PREV = "/app.prev"
STATE = "/update.json"
MAX_MANIFEST = 2048
MAX_BUNDLE = 512 * 1024
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."


class UpdateError(ValueError):
    pass


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove_tree(path):
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:
        for name in os.listdir(path):
            remove_tree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def load_state():
    try:
        with open(STATE) as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


def save_state(doc):
    with open(STATE + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(STATE + ".tmp", STATE)


def _check_manifest(doc, running):
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str) \
            or not isinstance(doc.get("sha256"), str) or not isinstance(doc.get("files"), list):
        raise UpdateError("the manifest needs version, files and sha256")
    if doc["version"] == running:
        raise UpdateError("version %s is already running" % running)
    total = 0
    for entry in doc["files"]:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], int):
            raise UpdateError("a manifest file entry is not [path, size]")
        path, size = entry
        name = path[6:] if isinstance(path, str) and path.startswith("light/") else ""
        if not name or [c for c in name if c not in _NAME_CHARS] or name[0] == "." \
                or not (name.endswith(".py") or name.endswith(".mpy")):
            raise UpdateError("%r is not a module of the light package" % (path,))
        total += size
    if total > MAX_BUNDLE:
        raise UpdateError("the bundle is %d bytes; at most %d fit" % (total, MAX_BUNDLE))
    if "light/__init__.py" not in [e[0] for e in doc["files"]] \
            and "light/__init__.mpy" not in [e[0] for e in doc["files"]]:
        raise UpdateError("the bundle has no light/__init__")


class Receiver:
    """Takes a bundle piece by piece (feed), writing its files under /app.new; finish() checks."""

    def __init__(self, running_version):
        self.running = running_version
        self.head = bytearray()
        self.manifest = None
        self.pending = []
        self.file = None
        self.left = 0
        self.hash = hashlib.sha256()
        self.error = None

    def feed(self, piece):
        if self.error is None:
            try:
                self._feed(piece)
            except (UpdateError, ValueError, OSError) as e:
                self.error = str(e)
                self._close()

    def _feed(self, piece):
        if self.manifest is None:
            end = bytes(piece).find(b"\n")
            self.head.extend(piece if end < 0 else piece[:end])
            if len(self.head) > MAX_MANIFEST:
                raise UpdateError("no manifest line in the first %d bytes" % MAX_MANIFEST)
            if end < 0:
                return
            self._start(json.loads(bytes(self.head)))
            piece = piece[end + 1:]
        while len(piece):
            if self.file is None:
                self._next_file()
            n = min(len(piece), self.left)
            self.file.write(piece[:n])
            self.hash.update(piece[:n])
            self.left -= n
            piece = piece[n:]
            if not self.left:
                self._close()

    def _start(self, manifest):
        _check_manifest(manifest, self.running)
        self.manifest = manifest
        self.pending = [list(e) for e in manifest["files"]]
        remove_tree(NEW)
        os.mkdir(NEW)
        os.mkdir(NEW + "/light")

    def _next_file(self):
        if not self.pending:
            raise UpdateError("the bundle is longer than its manifest says")
        path, self.left = self.pending.pop(0)
        self.file = open(NEW + "/" + path, "wb")
        if not self.left:
            self._close()

    def _close(self):
        if self.file is not None:
            self.file.close()
            self.file = None

    def finish(self):
        """The manifest of a complete, verified bundle in /app.new; else UpdateError."""
        self._close()
        if self.error is None and self.manifest is None:
            self.error = "no manifest line"
        if self.error is None and (self.pending or self.left):
            self.error = "the bundle is shorter than its manifest says"
        if self.error is None and hexlify(self.hash.digest()).decode() != self.manifest["sha256"]:
            self.error = "the SHA-256 of the bundle does not match its manifest"
        if self.error is not None:
            remove_tree(NEW)
            raise UpdateError(self.error)
        return self.manifest


def install(manifest):
    """Put the verified /app.new in place as a trial; the good update before it is kept."""
    state = load_state()
    remove_tree(PREV)
    previous = None
    if exists(APP) and state is not None and state.get("state") == "good":
        os.rename(APP, PREV)
        previous = state.get("version")
    else:
        remove_tree(APP)
    os.rename(NEW, APP)
    save_state({"version": manifest["version"], "state": "trial", "boots": 0,
                "previous": previous})


def on_trial():
    state = load_state()
    return state is not None and state.get("state") == "trial"


def confirm():
    """Keep a trial update (it has connected); returns its version, or None if none was on trial."""
    state = load_state()
    if state is None or state.get("state") != "trial":
        return None
    state["state"] = "good"
    state["boots"] = 0
    save_state(state)
    remove_tree(PREV)
    return state["version"]


def take_rollback_report():
    """The version main.py rolled back, once (None when there is nothing to report)."""
    state = load_state()
    if state is None or not state.get("rolled_back"):
        return None
    version = state.pop("rolled_back")
    save_state(state)
    return version
