"""The modules of gateway/queues import each other without cycles, typing imports included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gateway" / "queues"


def imports() -> dict[str, set[str]]:
    """{module: modules of gateway.queues it imports}, from the source, at any depth."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "gateway.queues":
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py")
                          .exists()}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "gateway.queues."):
                found.add((node.module or "").rsplit(".", 1)[1])
        graph[path.stem] = found
    return graph


def test_no_import_cycle_inside_gateway_queues() -> None:
    graph = imports()
    assert graph["queue"] >= {"model", "window", "dispatch"}  # the scan sees real imports
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path, module]))
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
