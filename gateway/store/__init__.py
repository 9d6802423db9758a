"""SQLite storage for sessions, retained messages and queues (WAL, group commit).

Everything that reaches the disk goes through one writer thread (`Committer`) so commits can be
grouped; callers learn that their writes are durable through `on_commit` callbacks.
"""
