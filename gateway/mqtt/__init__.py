"""Sans-IO MQTT 3.1.1 and 5.0: packets, codec, properties, reason codes, topics, matching.

Nothing in this package touches a socket, an event loop or a database (an import-linter
contract in pyproject.toml enforces it): it turns bytes into packets and packets into bytes.
"""
