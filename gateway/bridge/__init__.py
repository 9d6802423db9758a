"""Bridges to upstream MQTT brokers: local topics out through a durable outbox, upstream topics in.

`client.py` is a small MQTT client on the project's own codec; `bridge.py` ties it to the queue
engine (the outbox is an ordinary durable queue) and to the local broker.
"""
