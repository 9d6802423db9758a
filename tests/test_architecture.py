"""The map matches the code: gateway's parts import each other only downwards through the layers
that docs/architecture.md lists, with no cycle, and the doc's diagram is the import graph.

The graph is read with `ast` from every file under gateway/, typing-only imports (under
`if TYPE_CHECKING:`) and imports inside functions included. A part is a subpackage
(`gateway/broker/`) or a top-level module (`gateway/config.py`); imports inside one part do not
count. The table is read from the doc, so adding a module means placing it in a layer there.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"
DOC = ROOT / "docs" / "architecture.md"

Edges = dict[tuple[str, str], list[str]]


def parts() -> set[str]:
    """`gateway.broker`, `gateway.config`, ...: the subpackages and top-level modules."""
    found = {f"gateway.{p.name}" for p in GATEWAY.iterdir() if (p / "__init__.py").is_file()}
    found |= {f"gateway.{p.stem}" for p in GATEWAY.glob("*.py") if p.stem != "__init__"}
    return found


def _imported(node: ast.AST, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module == "gateway":  # `from gateway import config`: the module named
            yield from (f"gateway.{a.name}" for a in node.names if f"gateway.{a.name}" in known)
        else:
            yield node.module


def _part(module: str) -> str | None:
    pieces = module.split(".")
    return ".".join(pieces[:2]) if pieces[0] == "gateway" and len(pieces) > 1 else None


def import_graph() -> Edges:
    """(importer part, imported part) -> the `file:line` places that make the edge."""
    known = parts()
    edges: Edges = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        source = _part(".".join(relative.parts))
        if source is None:  # gateway/__init__.py: the version string only
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for module in _imported(node, known):
                target = _part(module)
                if target is not None and target != source:
                    place = f"{relative.with_suffix('.py')}:{node.lineno}"
                    edges.setdefault((source, target), []).append(place)
    return edges


def documented_layers() -> list[list[str]]:
    """The rows of the layer table in docs/architecture.md, top to bottom, as part names."""
    text = DOC.read_text()
    table = text.split("## Layers", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[2] for line in table.splitlines()[2:]]
    return [[_part_of_path(p) for p in re.findall(r"`(gateway/[^`]*)`", row)] for row in rows]


def _part_of_path(path: str) -> str:
    return path.removesuffix("/").removesuffix(".py").replace("/", ".")


def diagram_edges() -> set[tuple[str, str]]:
    block = DOC.read_text().split("```mermaid", 1)[1].split("```", 1)[0]
    return {(f"gateway.{a}", f"gateway.{b}")
            for a, b in re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.MULTILINE)}


def transitive_reduction(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges not implied by a longer path (unique for a DAG)."""
    reach = {a: {b for x, b in edges if x == a} for a, _ in edges}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(reach.get(start, ()))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += reach.get(node, ())
        return seen

    return {(a, b) for a, b in edges
            if not any(b in reachable(c) for c in reach[a] if c != b)}


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """One path per cycle found by depth-first search (empty for a DAG)."""
    out = {a: sorted(b for x, b in edges if x == a) for a, _ in edges}
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in out.get(node, []):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(out):
        if node not in state:
            visit(node, [node])
    return found


def mermaid(edges: set[tuple[str, str]]) -> str:
    """The diagram block to paste into docs/architecture.md when the imports change."""
    lines = [f"    {a.removeprefix('gateway.')} --> {b.removeprefix('gateway.')}"
             for a, b in sorted(edges)]
    return "```mermaid\nflowchart TD\n" + "\n".join(lines) + "\n```"


def test_the_parts_of_gateway_import_each_other_without_a_cycle() -> None:
    assert cycles(set(import_graph())) == []


def test_cycle_search_finds_a_cycle() -> None:
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c", "a"]]


def test_every_part_of_gateway_has_one_layer_in_the_doc() -> None:
    listed = [part for row in documented_layers() for part in row]
    assert sorted(listed) == sorted(parts()), "place new modules in docs/architecture.md"


def test_imports_only_go_down_the_documented_layers() -> None:
    rank = {part: i for i, row in enumerate(documented_layers()) for part in row}
    upward = [f"{a} -> {b} ({', '.join(places)})" for (a, b), places in import_graph().items()
              if rank[a] >= rank[b]]
    assert upward == []


def test_the_import_linter_contract_is_the_documented_table() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"]
                  if c["type"] == "layers"]
    assert [line.split(" | ") for line in contract["layers"]] == documented_layers()


def test_the_diagram_is_the_import_graph() -> None:
    expected = transitive_reduction(set(import_graph()))
    assert diagram_edges() == expected, "replace the diagram with:\n" + mermaid(expected)


def test_transitive_reduction_keeps_only_edges_without_a_detour() -> None:
    assert transitive_reduction({("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")}) == {
        ("a", "b"), ("b", "c"), ("c", "d")}
