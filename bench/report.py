"""The results table: printed, and written as JSON and markdown under bench/results/.

One row per scenario and broker, then a ratio row edgeq/Mosquitto for every figure both have
(lower is better for CPU, latency, memory and times; higher for msg/s).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench.brokers import BROKERS, EDGEQ, MOSQUITTO
from bench.scenarios.common import NOT_APPLICABLE, OK, Outcome

Fmt = Callable[[float], str]
COLUMNS: list[tuple[str, str, Fmt]] = [
    ("msg/s", "msg_s", lambda v: f"{v:,.0f}"),
    ("CPU µs/msg", "cpu_us", lambda v: f"{v:.1f}"),
    ("p50 ms", "p50_ms", lambda v: f"{v:.2f}"),
    ("p99 ms", "p99_ms", lambda v: f"{v:.2f}"),
    ("peak RSS MB", "peak_rss_mb", lambda v: f"{v:.1f}"),
]
HEADER = ["scenario", "broker", *(c[0] for c in COLUMNS), "other"]


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def _cells(o: Outcome) -> list[str]:
    if o.status == NOT_APPLICABLE:
        return ["n/a"] * len(COLUMNS) + [o.reason]
    cells = []
    for _, attr, fmt in COLUMNS:
        v = getattr(o, attr)
        cells.append("" if v is None else fmt(v))
    if o.generator_bound and cells[0]:
        cells[0] += "*"
    other = "; ".join(f"{k} {_num(v)}" for k, v in o.extra.items())
    if o.status != OK:
        other = f"{o.status}: {o.reason}" + (f" ({other})" if other else "")
    return [*cells, other]


def _ratio_cells(mos: Outcome, edg: Outcome) -> list[str]:
    cells = []
    for _, attr, _ in COLUMNS:
        a, b = getattr(mos, attr), getattr(edg, attr)
        cells.append(f"{b / a:.2f}x" if a and b is not None else "")
    extra = [f"{k} {edg.extra[k] / v:.2f}x" for k, v in mos.extra.items()
             if v and k in edg.extra]
    return [*cells, "; ".join(extra)]


def table_rows(outcomes: list[Outcome], titles: dict[str, str]) -> list[list[str]]:
    rows: list[list[str]] = []
    names = list(dict.fromkeys(o.scenario for o in outcomes))
    for name in names:
        found = {o.broker: o for o in outcomes if o.scenario == name}
        label = titles.get(name, name)
        for kind in BROKERS:
            if kind in found:
                rows.append([label, kind, *_cells(found[kind])])
                label = ""
        mos, edg = found.get(MOSQUITTO), found.get(EDGEQ)
        if mos and edg and mos.status == OK and edg.status == OK:
            rows.append(["", "edgeq/mosq", *_ratio_cells(mos, edg)])
    return rows


def render_text(rows: list[list[str]], width: int = 60) -> str:
    clipped = [[c if len(c) <= width else c[:width - 1] + "…" for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [HEADER, *clipped]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [HEADER, *clipped]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    out = [line(HEADER), "|" + "---|" * len(HEADER)]
    return "\n".join(out + [line(r) for r in rows])


def write(directory: Path, stem: str, meta: dict[str, object], outcomes: list[Outcome],
          markdown: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(json.dumps({**meta, "outcomes": [asdict(o) for o in outcomes]},
                                    indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path
