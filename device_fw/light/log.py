# One-line log messages on the console (the USB serial port on a board), stamped with the
# milliseconds since start-up. print() is all a board has; logging is not in its firmware.
import time


def log(msg):
    print("%9d %s" % (time.ticks_ms(), msg))
