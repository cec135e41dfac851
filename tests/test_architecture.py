"""The layer rule of docs/architecture.md, checked on the source: no upward import, no application importing
another, and functions and files of a size that fits on a screen (with the listed exceptions and their reasons).

Imports are read from the syntax tree, function-local imports included, so a deferred import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "chadavit"

# top-level name under chadavit -> layer; a module may import only lower layers, or its own package
LAYERS = {
    **dict.fromkeys(("errors", "version", "atomic", "retry", "sharding", "openmp", "config", "configs", "signals",
                     "locks", "net", "device"), 0),
    **dict.fromkeys(("data", "batch", "precision", "measure"), 1),
    "models": 2,
    **dict.fromkeys(("pretrain", "evaluation", "embed", "idr", "profiling"), 3),
    **dict.fromkeys(("experiments", "demo", "demo_data"), 4),
    **dict.fromkeys(("cli", "__main__", "__init__"), 5),
}
LAYER_NAMES = ("ground", "core", "models", "application", "orchestration", "cli")

# known exceptions still to remove, each with its reason: (importer package, imported package)
PENDING: dict[tuple[str, str], str] = {}

MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400
# functions and files over the limits, each with why it is still long; the test fails when one shrinks below
# the limit (remove it here) or a new one appears
LONG_FUNCTIONS: dict[str, str] = {}
LONG_FILES: dict[str, str] = {}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        out.append((".".join(("chadavit", *rel.parts)), path))
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_submodule(name: str) -> bool:
    return (SRC / f"{name}.py").is_file() or (SRC / name).is_dir()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "chadavit":  # a submodule, or the package face
            names.update(f"chadavit.{a.name}" if _is_submodule(a.name) else "chadavit" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] == "chadavit"}


def test_every_package_has_a_layer() -> None:
    unknown = {_package(m) for m, _ in _modules()} - set(LAYERS)
    assert not unknown, f"give these a layer in LAYERS and docs/architecture.md: {sorted(unknown)}"


def test_no_upward_or_sideways_import() -> None:
    bad, used = [], set()
    for module, path in _modules():
        src = _package(module)
        for name in _imports(path):
            dst = name.split(".")[1] if name.count(".") else "__init__"
            if dst not in LAYERS or dst == src or src in ("__init__", "__main__"):
                continue
            lo, hi = LAYERS[dst], LAYERS[src]
            upward = lo > hi
            sideways = lo == hi == 3
            if (upward or sideways) and (src, dst) in PENDING:
                used.add((src, dst))
            elif upward or sideways:
                bad.append(f"{module} ({LAYER_NAMES[hi]}) imports {name} ({LAYER_NAMES[lo]})")
    assert not bad, "imports against the layer rule:\n" + "\n".join(sorted(set(bad)))
    assert used == set(PENDING), f"no longer needed in PENDING: {sorted(set(PENDING) - used)}"


def _long_functions() -> dict[str, int]:
    out = {}
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out[f"{module}:{node.name}"] = n
    return out


def test_functions_fit_on_a_screen() -> None:
    found = _long_functions()
    new = {k: v for k, v in found.items() if k not in LONG_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split by concern): {new}"
    assert not set(LONG_FUNCTIONS) - set(found), f"now short, remove from LONG_FUNCTIONS: " \
                                                  f"{sorted(set(LONG_FUNCTIONS) - set(found))}"


def test_files_stay_small() -> None:
    found = {m: len(p.read_text().splitlines()) for m, p in _modules()}
    found = {m: n for m, n in found.items() if n > MAX_FILE_LINES}
    new = {k: v for k, v in found.items() if k not in LONG_FILES}
    assert not new, f"files over {MAX_FILE_LINES} lines (split by concern): {new}"
    short = sorted(set(LONG_FILES) - set(found))
    assert not short, f"now short, remove from LONG_FILES: {short}"


@pytest.mark.parametrize("module", ["chadavit.cli.main", "chadavit.version", "chadavit.errors"])
def test_the_command_line_face_loads_no_heavy_library(module: str) -> None:
    import subprocess
    import sys

    code = (f"import sys, importlib; m = importlib.import_module({module!r}); "
            "getattr(m, 'build_parser', lambda: None)(); "
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'pandas', 'numpy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing {module} (and building the parser) loaded {out}"
