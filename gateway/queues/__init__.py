"""Durable message queues: the engine, dispatch strategies, last-value keys and limits.

The engine knows nothing of sockets or the event loop: the broker hands it messages and
consumers (objects with `capacity()` and `deliver()`), and it hands back decisions.
"""
