"""The models package imports one way down its layers: no module imports a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import chadavit.models

PKG = Path(chadavit.models.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every chadavit.models module ``path`` imports, at top level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chadavit.models"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("chadavit.models"))
    return out


def _graph() -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in mods} for m, p in mods.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return seen


def test_no_module_of_models_imports_itself_back() -> None:
    graph = _graph()
    # the package __init__ only re-exports; a submodule importing the package itself would be a cycle
    cycles = sorted(m for m in graph if m != "chadavit.models" and m in _reachable(graph, m))
    assert not cycles, f"import cycles through {cycles}"


def test_registry_is_a_leaf() -> None:
    graph = _graph()
    assert graph["chadavit.models.registry"] <= {"chadavit.models.config"}
