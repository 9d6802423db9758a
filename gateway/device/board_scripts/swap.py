# Run on the board by `edgeq device deploy` (mpremote exec) once /fw.new holds a complete copy:
# the firmware's module directories are replaced as a whole (so no stale .py shadows a new
# .mpy: MicroPython prefers .py), and the top-level files are renamed over the old ones.
import os


def _rm(p):
    try:
        m = os.stat(p)[0]
    except OSError:
        return
    if m & 0x4000:
        for e in os.listdir(p):
            _rm(p + "/" + e)
        os.rmdir(p)
    else:
        os.remove(p)


try:
    os.mkdir("/lib")
except OSError:
    pass
for _d in ("/light", "/lib/umqtt"):
    _rm(_d)
    os.rename("/fw.new" + _d, _d)
for _f in os.listdir("/fw.new"):
    if _f not in ("light", "lib"):
        try:
            os.rename("/fw.new/" + _f, "/" + _f)
        except OSError:  # FAT does not rename over a file; LittleFS does
            os.remove("/" + _f)
            os.rename("/fw.new/" + _f, "/" + _f)
_rm("/fw.new")
