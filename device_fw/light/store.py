# What the light remembers across a reset: the last applied state and the ids of the last
# RECENT_IDS commands, in one small JSON file on the board's flash (/state.json).
#
# Flash wears out with erases, so the file is written only when the state changed, never twice
# within save_ms: a change inside that window is written by a later flush(), from the main loop,
# once the window has passed. A write goes to a temporary file that is then renamed over the
# old one, so a reset in the middle of it leaves the previous state, never half a file.
# The price of the window: a command applied (and acknowledged) less than save_ms after the
# previous write is forgotten if the board resets before its own write.
import json
import os
import time

RECENT_IDS = 16


class Store:
    def __init__(self, path, save_ms, state):
        self.path = path
        self.save_ms = save_ms
        self.state = state
        self.ids = []
        self.dirty = False
        self.saved_at = None

    def load(self, valid):
        """Take the state from the file when `valid(state)`; returns whether it did."""
        try:
            with open(self.path) as f:
                doc = json.load(f)
            state, ids = doc["state"], doc["ids"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not valid(state) or not isinstance(ids, list):
            return False
        self.state = state
        self.ids = [i for i in ids if isinstance(i, str)][-RECENT_IDS:]
        return True

    def seen(self, command_id):
        return command_id is not None and command_id in self.ids

    def record(self, state, command_id):
        """Note a state just applied, and the id of the command that led to it."""
        if command_id is not None:
            self.ids.append(command_id)
            if len(self.ids) > RECENT_IDS:
                self.ids.pop(0)
        if state != self.state:
            self.state = state
            self.dirty = True

    def flush(self):
        """Write the state if it changed and the last write is save_ms old; True if written."""
        if not self.dirty:
            return False
        now = time.ticks_ms()
        if self.saved_at is not None and time.ticks_diff(now, self.saved_at) < self.save_ms:
            return False
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"state": self.state, "ids": self.ids}, f)
        os.rename(tmp, self.path)
        self.dirty = False
        self.saved_at = now
        return True
