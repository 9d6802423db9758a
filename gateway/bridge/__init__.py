"""Bridges to upstream MQTT brokers: local topics out through a durable outbox, upstream topics in.

`rules` maps topics (the outbox queue names are config meaning, in `gateway.config`); `client`
is a small MQTT client on the project's own codec; `outbox` (local -> upstream, a queue
consumer) and `inbound` (upstream -> local) are the two directions; `bridge` keeps one uplink
alive with backoff; `manager` runs the bridges as a service of the broker; `host` is the narrow
side of the broker they use (the bridge never imports `gateway.broker`); `status` shapes what
they report (docs/bridge.md).
"""
