"""No import cycle inside ``mtunet.data``: what two modules share lives in a third.

Every ``import`` statement counts, wherever it is: module level, inside a function (a
deferred import only hides a circle) and under ``if TYPE_CHECKING:``. An edge ``a -> b``
means module ``a`` names module ``b`` in an import (``from pkg import name`` names the
submodule ``pkg.name`` when there is one, else ``pkg`` itself); the implicit import of a
parent package's ``__init__`` is not an edge, since Python has that module half-built in
``sys.modules`` by then.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file for every module under the package folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports anywhere in its file."""
    modules = _modules(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                subs = [f"{base}.{alias.name}" for alias in node.names]
                found = [s for s in subs if s in modules]
                # Names that are not submodules come from the module itself.
                targets = found + ([base] if len(found) < len(subs) else [])
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_mtunet_data_has_no_import_cycle() -> None:
    graph = import_graph(REPO / "mtunet" / "data", "mtunet.data")
    assert "mtunet.data.acdc_common" in graph["mtunet.data.acdc_release"]  # the graph is real
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in mtunet.data: " + " -> ".join(cycle or [])


def test_the_acdc_readers_share_one_module_and_only_the_dispatch_imports_them() -> None:
    graph = import_graph(REPO / "mtunet" / "data", "mtunet.data")
    readers = {f"mtunet.data.acdc_{k}" for k in ("raw", "release", "ssl4mis")}
    assert readers <= graph["mtunet.data.acdc"]
    for reader in readers:
        assert "mtunet.data.acdc_common" in graph[reader]
        assert not graph[reader] & (readers | {"mtunet.data.acdc"}), reader
        assert not {u for u in graph if reader in graph[u]} - {"mtunet.data.acdc"}, reader


@pytest.mark.parametrize(
    ("b_source", "cycle"),
    [
        ("def f():\n    from pkg.a import x\n", ["pkg.a", "pkg.b", "pkg.a"]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        ("from . import c\n", ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]),
        ("import os\n", None),
    ],
    ids=["function-level", "type-checking", "relative-three", "none"],
)
def test_cycles_are_found_wherever_the_import_is(
    tmp_path: Path, b_source: str, cycle: list[str] | None
) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg.a import x\n")
    (pkg / "a.py").write_text("from pkg.b import y\nx = 1\n")
    (pkg / "b.py").write_text(f"y = 2\n{b_source}")
    (pkg / "c.py").write_text("from .a import x\n")
    assert find_cycle(import_graph(pkg, "pkg")) == cycle
