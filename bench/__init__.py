"""Benchmarks of edgeq side by side with Mosquitto (`make bench`, `python -m bench`).

Starts both brokers on free loopback ports, drives them with a load generator built on raw
sockets and pre-encoded packets, and reports throughput, broker CPU per message, latency and
memory as ratios edgeq/Mosquitto. See docs/performance.md.
"""
