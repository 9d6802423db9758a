# main.py: starts the light (light/app.py) unless /nostart exists.
#
# /nostart is the maintenance hatch: once the application runs, its hardware watchdog cannot be
# stopped, so `edgeq device deploy` creates /nostart and resets the board, copies the files
# while nothing runs, then removes /nostart and resets again.
#
# Which light/ package runs: an update received over MQTT (light/update.py) lives in /app/light,
# next to the deployed /light, and /update.json says what it is: {"version", "state", "boots"}.
# A "trial" update is started at most MAX_TRIAL_BOOTS times; light/app.py makes it "good" once
# it has connected. A trial that has used its starts is rolled back here: the good update
# before it (/app.prev) or else the deployed /light runs again. This file is never updated
# over the air, so the way back does not depend on the code on trial.
import json
import os
import sys

UPDATE = "/update.json"
MAX_TRIAL_BOOTS = 3


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove_tree(path):
    if not _exists(path):
        return
    if os.stat(path)[0] & 0x4000:
        for name in os.listdir(path):
            _remove_tree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _load():
    try:
        with open(UPDATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _save(doc):
    with open(UPDATE + ".tmp", "w") as f:
        json.dump(doc, f)
    os.rename(UPDATE + ".tmp", UPDATE)


def _roll_back(update):
    _remove_tree("/app")
    if _exists("/app.prev"):
        os.rename("/app.prev", "/app")
        _save({"version": update.get("previous"), "state": "good", "boots": 0,
               "rolled_back": update["version"]})
    else:
        _save({"version": None, "state": "rolled-back", "boots": 0,
               "rolled_back": update["version"]})
    print("main.py: update %s did not connect in %d starts; rolled back"
          % (update["version"], MAX_TRIAL_BOOTS))


def _choose_app():
    """Put an installed update first on sys.path; returns its /update.json, or None."""
    update = _load()
    if not isinstance(update, dict) or update.get("state") not in ("trial", "good") \
            or not _exists("/app/light"):
        return None
    if update["state"] == "trial":
        update["boots"] = update.get("boots", 0) + 1
        if update["boots"] > MAX_TRIAL_BOOTS:
            _roll_back(update)
            return _choose_app()
        _save(update)
    sys.path.insert(0, "/app")
    return update


def _start():
    update = _choose_app()
    try:
        from light import app
    except Exception as e:  # only code on trial may fail here: the next start counts
        if update is None or update["state"] != "trial":
            raise
        sys.print_exception(e)
        print("main.py: update %s does not start; resetting" % update["version"])
        import machine

        machine.reset()
    app.main()


if _exists("/nostart"):
    print("main.py: /nostart exists; the light is not started (delete it and reset to start)")
else:
    _start()
