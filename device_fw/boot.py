# boot.py: runs first at every start-up, then main.py. Keep it small and unable to fail.
import gc
import sys

# /lib before .frozen: the official ESP32 firmware freezes a newer umqtt.simple whose API
# differs; the light uses the umqtt.simple 1.3.4 it was tested with, deployed to /lib/umqtt.
if "/lib" in sys.path:
    sys.path.remove("/lib")
sys.path.insert(1, "/lib")
gc.collect()
