"""The MQTT broker: listeners, connections, sessions, routing, retained messages and wills.

A thin asyncio layer over the sans-IO codec (`gateway.mqtt`): connections move bytes, sessions
keep per-client state, the router decides who gets a message, and queues live in
`gateway.queues`.
"""
