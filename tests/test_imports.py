"""Imports inside the package flow one way: no module imports, at module level or inside a
function, a module that imports it back (directly or through others)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xfer_nb"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _owner(name: str, mods: dict) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """{module: the package modules it imports anywhere in its code}."""
    mods, graph = _modules(), {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("xfer_nb"):
                for alias in node.names:   # `from xfer_nb import train` names a module
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in mods else _owner(node.module, mods))
            elif isinstance(node, ast.Import):
                deps.update(_owner(a.name, mods) for a in node.names if a.name.startswith("xfer_nb"))
        graph[name] = {d for d in deps if d and d not in (name, "xfer_nb")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_detector_finds_a_cycle_through_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_back():
    graph = import_graph()
    assert {"xfer_nb.pipeline", "xfer_nb.train", "xfer_nb.launch", "xfer_nb.sweep"} <= set(graph)
    assert "xfer_nb.distributed" in graph["xfer_nb.train"] and "xfer_nb.pipeline" in graph["xfer_nb.launch"]
    assert cycles(graph) == []
