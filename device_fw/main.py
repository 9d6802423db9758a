# main.py: starts the light (light/app.py) unless /nostart exists.
#
# /nostart is the maintenance hatch: once the application runs, its hardware watchdog cannot be
# stopped, so `edgeq device deploy` creates /nostart and resets the board, copies the files
# while nothing runs, then removes /nostart and resets again.
import os


def _maintenance():
    try:
        os.stat("/nostart")
        return True
    except OSError:
        return False


if _maintenance():
    print("main.py: /nostart exists; the light is not started (delete it and reset to start)")
else:
    from light import app

    app.main()
