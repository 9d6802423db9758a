"""Small helpers shared by the byte-exact tests."""

from __future__ import annotations


def h(text: str) -> bytes:
    """Bytes from spaced hex with quoted ASCII runs: h("00 04 'MQTT' 04")."""
    out = bytearray()
    for i, chunk in enumerate(text.split("'")):
        out += chunk.encode() if i % 2 else bytes.fromhex(chunk)
    return bytes(out)
