"""The small widgets the screens are built from."""
