"""Short, fixed-width renderings of counts, sizes, rates and durations for table cells, and
client-chosen names made safe to draw."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.logtext import escape

if TYPE_CHECKING:
    from tui.model import QueueRow

KIND_LABELS = {"standard": "std", "last_value": "lvq", "template": "tmpl",
               "instance": "inst", "dead_letter": "dlq"}


def printable(text: str) -> str:
    """A name a client chose (queue, client id, topic, payload) with its control characters
    escaped, so it cannot move the cursor, recolour the screen or add a line."""
    return escape(text)


def kind(value: str) -> str:
    """Queue kind as a 3-4 letter label (explained on the help screen)."""
    return KIND_LABELS.get(value, value[:4])


def count(n: int) -> str:
    """12, 9999, 12.3k, 1.2M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 100_000 else f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def size(n: int) -> str:
    """Bytes: 512B, 12K, 3.4M, 1.2G."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{n}B"


def rate(per_second: float) -> str:
    """Messages per second: 0, 0.4, 12, 1.2k."""
    if per_second < 0.05:
        return "0"
    if per_second < 10:
        return f"{per_second:.1f}"
    if per_second < 10_000:
        return f"{per_second:.0f}"
    return f"{per_second / 1000:.1f}k"


def seconds(value: float) -> str:
    """A duration: 0, 4.2s, 57s, 3m05, 2h10, 3d4h."""
    if value <= 0:
        return "0"
    if value < 10:
        return f"{value:.1f}s"
    total = int(value)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}"
    return f"{total // 86400}d{total % 86400 // 3600}h"


def clip(text: str, width: int) -> str:
    """Cut `text` to `width` cells with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def queue_labels(queues: Iterable[QueueRow]) -> dict[str, str]:
    """Short names for the queue column: a template's instance shows only the topic levels
    the template's wildcards matched (`lights/light-7/commands` under `lights/+/commands`
    shows as `└ light-7`), so instances stay apart even in 80 columns."""
    rows = list(queues)
    templates = [q.filter or q.name for q in rows if q.kind == "template"]
    labels: dict[str, str] = {}
    for q in rows:
        if q.kind != "instance":
            continue
        for template in templates:
            parts = wildcard_parts(template, q.name)
            if parts:
                labels[q.name] = "└ " + "/".join(parts)
                break
    return labels


def wildcard_parts(pattern: str, topic: str) -> list[str] | None:
    """The levels of `topic` that `pattern`'s `+`/`#` matched, or None if it does not match."""
    levels, parts = topic.split("/"), list[str]()
    for i, want in enumerate(pattern.split("/")):
        if want == "#":
            return [*parts, "/".join(levels[i:])]
        if i >= len(levels) or (want != "+" and want != levels[i]):
            return None
        if want == "+":
            parts.append(levels[i])
    return parts if len(levels) == len(pattern.split("/")) else None
