"""No import circle anywhere in ``mtunet``: what two modules share lives in a third.

Every ``import`` statement counts, wherever it is written: at module level, inside a function
(a deferred import only hides a circle) and under ``if TYPE_CHECKING:`` (a circle that only
type checkers follow still ties the modules together, and moving one import to the top turns
it into a real one). An edge ``a -> b`` means module ``a`` names module ``b`` in an import
(``from pkg import name`` names the submodule ``pkg.name`` when there is one, else ``pkg``
itself). The implicit import of a parent package's ``__init__`` is not an edge: every
submodule would otherwise close a circle through an ``__init__`` that imports it.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


def _shortest_cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest path ``start -> ... -> start``, or None (breadth-first)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest circle through each module that lies on one, each circle listed once."""
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(graph):
        cycle = _shortest_cycle_through(graph, start)
        if cycle is not None and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            cycles.append(cycle)
    return cycles


def _describe(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_mtunet_has_no_import_cycle() -> None:
    graph = import_graph(REPO / "mtunet", "mtunet")
    # The walk sees the package, subpackages and function-level imports included.
    assert {"mtunet.training.spec", "mtunet.training.state"} <= graph["mtunet.training.loop"]
    assert "mtunet.data.acdc_common" in graph["mtunet.data.acdc_release"]
    assert "mtunet.inference" in graph["mtunet.training.validation"]  # inside a function
    cycles = import_cycles(graph)
    assert not cycles, "import circles in mtunet:\n" + _describe(cycles)


def test_the_acdc_readers_share_one_module_and_only_the_dispatch_imports_them() -> None:
    graph = import_graph(REPO / "mtunet", "mtunet")
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
        (
            "class K:\n    def m(self):\n        import pkg.sub.d\n",
            ["pkg.a", "pkg.b", "pkg.sub.d", "pkg.a"],
        ),
        ("import os\n", None),
    ],
    ids=["function-level", "type-checking", "relative-three", "method-subpackage", "none"],
)
def test_cycles_are_found_wherever_the_import_is(
    tmp_path: Path, b_source: str, cycle: list[str] | None
) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import x\n")
    (pkg / "a.py").write_text("from pkg.b import y\nx = 1\n")
    (pkg / "b.py").write_text(f"y = 2\n{b_source}")
    (pkg / "c.py").write_text("from .a import x\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "d.py").write_text("from pkg.a import x\n")
    cycles = import_cycles(import_graph(pkg, "pkg"))
    assert cycles == ([cycle] if cycle else [])
    if cycle:
        assert _describe(cycles) == " -> ".join(cycle)
