"""The admin API: a small authenticated HTTP/JSON interface on localhost, and Prometheus text.

The CLI (`edgeq queue ...`) and the TUI (`edgeq top`) are clients of this API; nothing outside
the gateway process reads the SQLite file.
"""
