# socket for the WebAssembly MicroPython used by the firmware tests: see usocket.py.
from usocket import *  # noqa: F403
