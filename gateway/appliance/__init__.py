"""What makes the broker an appliance: systemd integration (sd_notify, watchdog, journal) and the
status LED and button on the Pi's GPIO header.

Both parts are optional at run time: without systemd or without GPIO hardware they become no-ops,
so the same gateway runs on a laptop, in CI and on the Pi. Nothing here knows about MQTT.
"""
