# Run on the board by `edgeq device deploy` (mpremote exec), in maintenance: an empty staging
# tree, /fw.new, for the new firmware. The old firmware is not touched.
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


_rm("/fw.new")
for _p in ("", "/light", "/lib", "/lib/umqtt"):
    os.mkdir("/fw.new" + _p)
