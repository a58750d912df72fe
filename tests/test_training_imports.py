"""No import circle inside ``mtunet.training``.

Every import counts, wherever it is written: at module level, inside a function or method,
and under ``if TYPE_CHECKING:`` (a circle that only type checkers follow still ties the
modules together, and moving one import to the top turns it into a real one).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file for the package and every module in it (not subpackages' own)."""
    folder = root.joinpath(*package.split("."))
    names = {package: folder / "__init__.py"}
    for path in sorted(folder.glob("*.py")):
        if path.name != "__init__.py":
            names[f"{package}.{path.stem}"] = path
    return names


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Which modules of ``package`` each of its modules imports (every import statement).

    ``from package import name`` counts as importing the submodule ``name`` when there is
    one, else the package's ``__init__``. Importing ``package.sub`` runs ``package``'s
    ``__init__`` first, but that is not counted: every submodule would otherwise close a
    circle through an ``__init__`` that imports its submodules.
    """
    modules = _module_names(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, is_package)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _shortest_cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest path ``start -> ... -> start``, or None."""
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


def test_training_package_has_no_import_cycle() -> None:
    graph = import_graph(REPO, "mtunet.training")
    # The walk sees the package: the loop imports the spec, state and validation modules.
    assert {"mtunet.training.spec", "mtunet.training.state"} <= graph["mtunet.training.loop"]
    cycles = import_cycles(graph)
    assert not cycles, "import circles in mtunet.training:\n" + _describe(cycles)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A package whose circles hide in a function and under TYPE_CHECKING."""
    files = {
        "pkg/__init__.py": "from pkg.a import f\n",
        "pkg/a.py": "def f():\n    from pkg.b import g\n",
        "pkg/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .a import f\n"
            "from pkg import c\n"
        ),
        "pkg/c.py": "import os\nfrom pkg import shared\n",
        "pkg/shared.py": "",
        "pkg/d.py": "from pkg import e\n",
        "pkg/e.py": "class K:\n    def m(self):\n        import pkg.d\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_cycles_are_found_and_named(toy: Path) -> None:
    graph = import_graph(toy, "pkg")
    assert graph["pkg.b"] == {"pkg.a", "pkg.c"}
    assert graph["pkg.c"] == {"pkg.shared"}
    cycles = import_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.d", "pkg.e", "pkg.d"]]
    assert _describe(cycles) == "pkg.a -> pkg.b -> pkg.a\npkg.d -> pkg.e -> pkg.d"
    # Moving what the circle shares into a module both import breaks it.
    (toy / "pkg/b.py").write_text("from pkg import shared\n")
    assert import_cycles(import_graph(toy, "pkg")) == [["pkg.d", "pkg.e", "pkg.d"]]
