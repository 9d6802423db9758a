"""`edgeq top`: the Textual terminal view of a gateway's queues, consumers and clients.

It reads everything over the network through a data source (the admin API in production) and
never opens the gateway's SQLite store. `tui.app` is the entry point.
"""
