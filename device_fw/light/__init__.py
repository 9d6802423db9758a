# The edgeq smart-light firmware for ESP32 boards running MicroPython.
# Modules: config (config.json, pins per chip), commands (the JSON command schema), hw (the
# LED), wifi (the station link), backoff (reconnect delays), mqtt (umqtt.simple with deadlines,
# bounded reception and a checked keepalive), store (the state kept on flash across resets),
# app (the MQTT session and main loop).
# config, commands and backoff are plain Python that CPython imports too (tool.py uses them).
__version__ = "0.2.0"
