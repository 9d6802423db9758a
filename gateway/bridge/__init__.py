"""Bridges to upstream MQTT brokers: local topics out through a durable outbox, upstream topics in.

`rules` maps topics and names the outbox queues; `client` is a small MQTT client on the
project's own codec; `outbox` (local -> upstream, a queue consumer) and `inbound` (upstream ->
local) are the two directions; `bridge` keeps one uplink alive with backoff; `manager` runs the
broker's bridges; `status` shapes what they report (docs/bridge.md).
"""
