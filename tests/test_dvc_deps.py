"""dvc.yaml lists exactly the library modules each stage imports, no more and no fewer.

For each stage, the script named in its ``cmd`` is parsed and its imports are followed through
the ``mtunet`` package, statically, the way Python runs them:

- importing ``a.b.c`` runs the import-time code of ``a/__init__.py``, ``a/b/__init__.py`` and
  ``c``; a package resolves to its ``__init__.py``; relative imports are resolved;
- ``from a.b import x`` follows the submodule ``a/b/x.py`` (all of it) when there is one;
- import-time code (module level and class bodies) is always followed; an import inside a
  top-level function is followed when that function can run: the module was imported whole
  (``import m``, ``from pkg import m``, ``*``), or the function is imported by name or
  referenced from code already followed in the same module.

The last rule is what lets ``pipeline/train.py`` (``from mtunet.stages import run_train``)
skip the report code that ``mtunet.stages.run_report`` imports. A name a package loads on first
use (its ``_LAZY`` table of name to module, read by its module ``__getattr__``) follows that
module when the name is imported, so ``from mtunet.data import SliceDataset`` reaches
``mtunet/data/datasets.py`` while the phantoms stage, which never asks for it, does not. Package data (a file under
``mtunet/`` that is not Python, such as the report's template) is needed when a module reached
names it: a string constant equal to its file name. Every module and data file reached must
be covered by a dep (the file, or a directory above it) and every ``mtunet`` dep must be
reached (each ``.py`` file under a directory dep), so a change to imported code or its data
reruns the stage and a change to other code does not.
"""

from __future__ import annotations

import ast
import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "mtunet"
WHOLE = "*"  # the unit name for "every function of the module"
TOP = ""  # the unit name for a module's import-time code


@dataclass
class _Module:
    """One parsed source file: its import-time code and its top-level functions."""

    name: str
    path: Path
    is_package: bool
    top: list[ast.AST] = field(default_factory=list)
    functions: dict[str, ast.AST] = field(default_factory=dict)
    lazy: dict[str, str] = field(default_factory=dict)  # name -> module it is loaded from


def _module_file(root: Path, name: str) -> Path | None:
    """The file of dotted module ``name`` under ``root`` (a package's ``__init__.py``)."""
    parts = name.split(".")
    if not name or parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_type_checking_block(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
        and not node.orelse
    )


def _parse(name: str, path: Path, is_package: bool, *, split: bool = True) -> _Module:
    """Split a file into import-time code and top-level functions (all top-level if not split)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _Module(name, path, is_package)
    for node in tree.body:
        if _is_type_checking_block(node):
            continue  # `if TYPE_CHECKING:` never runs
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["_LAZY"]
            and isinstance(node.value, ast.Dict)
        ):
            module.lazy = ast.literal_eval(node.value)
        if split and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            module.functions[node.name] = node
            # Decorators and default values run at import time.
            module.top.extend(node.decorator_list)
            module.top.extend(d for d in [*node.args.defaults, *node.args.kw_defaults] if d)
        else:
            module.top.append(node)
    return module


def _base(node: ast.ImportFrom, module: _Module) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _requests(root: Path, nodes: list[ast.AST], module: _Module) -> Iterator[tuple[str, str]]:
    """(module, unit) pairs that the code in ``nodes`` imports or calls."""
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, WHOLE
            elif isinstance(node, ast.ImportFrom):
                base = _base(node, module)
                for alias in node.names:
                    if alias.name == "*":
                        yield base, WHOLE
                        continue
                    if _module_file(root, f"{base}.{alias.name}") is not None:
                        yield f"{base}.{alias.name}", WHOLE
                    yield base, alias.name
            elif isinstance(node, ast.Name) and node.id in module.functions:
                yield module.name, node.id


def imported_files(script: Path, root: Path = REPO) -> set[str]:
    """Every file of the package that running ``script`` can import, relative to ``root``."""
    modules: dict[str, _Module] = {}
    seen: set[tuple[str, str]] = set()
    main = _parse("__main__", script, False, split=False)
    queue = list(_requests(root, main.top, main))
    while queue:
        name, unit = queue.pop()
        if (name, unit) in seen:
            continue
        seen.add((name, unit))
        if name not in modules:
            path = _module_file(root, name)
            if path is None:
                continue  # outside the package, or an attribute rather than a module
            modules[name] = _parse(name, path, path.name == "__init__.py")
            parents = name.split(".")
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
            queue.extend((".".join(parents[:i]), TOP) for i in range(1, len(parents)))
            queue.append((name, TOP))
        module = modules[name]
        if unit == TOP:
            nodes = module.top
        elif unit == WHOLE:
            nodes = list(module.functions.values())
            queue.append((name, TOP))
        else:
            nodes = [module.functions[unit]] if unit in module.functions else []
            if unit in module.lazy:
                queue.append((module.lazy[unit], unit))
        queue.extend(_requests(root, nodes, module))
    return {m.path.relative_to(root).as_posix() for m in modules.values()}


def data_files(modules: set[str], root: Path = REPO) -> set[str]:
    """Package data files (not ``.py``) that ``modules`` (files relative to ``root``) name.

    A file is named when a module holds a string constant equal to its file name, e.g.
    ``"report.md.j2"`` for ``mtunet/report/templates/report.md.j2``.
    """
    names = {
        node.value
        for rel in modules
        for node in ast.walk(ast.parse((root / rel).read_text(), filename=rel))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    return {
        p.relative_to(root).as_posix()
        for p in (root / PACKAGE).rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and p.name in names
    }


_VAR = re.compile(r"\$\{\s*([\w.]+)\s*\}")


def _lookup(context: dict[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        value = value[part]
    return value


def _substitute(value: Any, context: dict[str, Any]) -> Any:
    """DVC's ``${...}`` interpolation, recursively (a lone ``${x}`` keeps x's type)."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return _lookup(context, whole.group(1))
        return _VAR.sub(lambda m: str(_lookup(context, m.group(1))), value)
    if isinstance(value, list):
        return [_substitute(v, context) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, context): _substitute(v, context) for k, v in value.items()}
    return value


def _matrix_items(matrix: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """DVC's ``matrix``: the product of the lists (a mapping contributes its keys). An empty
    list (e.g. no ablations in the quick default) becomes one placeholder, so the stage's deps
    are still checked."""
    axes = []
    for key, values in matrix.items():
        values = _substitute(values, params)
        values = list(values) if values else ["placeholder"]
        axes.append([(key, v) for v in values])
    return [dict(combo) for combo in itertools.product(*axes)]


def dvc_stages(root: Path = REPO) -> dict[str, dict[str, Any]]:
    """The stages of ``dvc.yaml`` with ``foreach`` and ``matrix`` expanded (``name@key``) and
    vars filled in."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    params_path = root / "params.yaml"
    params = yaml.safe_load(params_path.read_text()) if params_path.is_file() else {}
    stages: dict[str, dict[str, Any]] = {}
    for name, stage in spec["stages"].items():
        if "matrix" in stage:
            body = {k: v for k, v in stage.items() if k != "matrix"}
            for item in _matrix_items(stage["matrix"], params):
                key = "-".join(str(v) for v in item.values())
                stages[f"{name}@{key}"] = _substitute(body, {**params, "item": item})
            continue
        if "foreach" not in stage:
            stages[name] = _substitute(stage, params)
            continue
        items = _substitute(stage["foreach"], params)
        pairs = items.items() if isinstance(items, dict) else ((str(v), v) for v in items)
        for key, item in pairs:
            stages[f"{name}@{key}"] = _substitute(stage["do"], {**params, "key": key, "item": item})
    return stages


def _script(stage: dict[str, Any]) -> str:
    """The Python script a stage's ``cmd`` runs."""
    scripts = [w for w in shlex.split(stage["cmd"]) if w.endswith(".py")]
    assert len(scripts) == 1, f"expected one .py script in cmd {stage['cmd']!r}"
    return scripts[0]


def dep_problems(name: str, stage: dict[str, Any], root: Path = REPO) -> list[str]:
    """What a stage's deps lack (imported, not covered) and list in vain (covered, not imported)."""
    script = _script(stage)
    modules = imported_files(root / script, root)
    imported = modules | data_files(modules, root) | {script}
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    deps = [d.rstrip("/") for d in deps]
    missing = sorted(f for f in imported if not any(f == d or f.startswith(f"{d}/") for d in deps))
    stale = []
    for dep in deps:
        if dep != PACKAGE and not dep.startswith(f"{PACKAGE}/"):
            continue
        path = root / dep
        if path.is_dir():
            files = sorted(p.relative_to(root).as_posix() for p in path.rglob("*.py"))
            stale += [f"{f} (in {dep})" for f in files if f not in imported]
        elif dep not in imported:
            stale.append(dep if path.exists() else f"{dep} (no such file)")
    problems = []
    if missing:
        problems.append(f"{name}: missing deps (imported, not listed): {', '.join(missing)}")
    if stale:
        problems.append(f"{name}: stale deps (listed, not imported): {', '.join(stale)}")
    return problems


def test_every_stage_lists_exactly_the_modules_it_imports() -> None:
    stages = dvc_stages()
    assert {
        "phantoms@synapse",
        "train@acdc-mtunet-1234",
        "train_ablation@acdc-placeholder-1234",
        "evaluate@synapse-unet-1234",
        "compare@synapse",
        "report",
    } <= set(stages)
    problems = [p for name, stage in stages.items() for p in dep_problems(name, stage)]
    assert not problems, "dvc.yaml deps do not match the imports:\n" + "\n".join(problems)


def test_stages_reach_their_library_code() -> None:
    """The walk itself: each stage reaches its own code and not the other stages' code."""
    reached = {name: imported_files(REPO / _script(s)) for name, s in dvc_stages().items()}
    assert {"mtunet/stages.py", "mtunet/config.py"} <= reached["phantoms@acdc"]
    assert "mtunet/data/synthetic/acdc_cine.py" in reached["phantoms@acdc"]
    train = reached["train@synapse-mtunet-1234"]
    assert {"mtunet/model/network.py", "mtunet/model/registry.py"} <= train
    assert "mtunet/data/__init__.py" in train
    assert "mtunet/report/report.py" in reached["report"]
    assert "mtunet/report/templates/report.md.j2" in data_files(reached["report"])
    assert not data_files(reached["compare@acdc"])  # the statistics need no template
    assert not any(f.startswith("mtunet/report/") for f in train)
    # The compare stage uses the statistics, not the report's plotting code.
    assert "mtunet/report/stats.py" in reached["compare@acdc"]
    assert "mtunet/report/plots.py" not in reached["compare@acdc"]
    assert not any(f.startswith("mtunet/model/") for f in reached["phantoms@synapse"])
    # Datasets (torch) load on first use: training asks for them, the phantoms do not.
    assert "mtunet/data/datasets.py" in train
    assert "mtunet/data/datasets.py" not in reached["phantoms@acdc"]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A small ``mtunet`` package exercising each import form, with a stage script."""
    files = {
        "mtunet/__init__.py": "",
        "mtunet/a.py": (
            "from . import b\n"
            "from .sub import helper\n"
            "def used():\n    from mtunet.lazy import x\n    return _inner()\n"
            "def _inner():\n    from .sub.deep import y\n"
            "def unused():\n    import mtunet.never\n"
        ),
        "mtunet/b.py": "",
        "mtunet/sub/extra.py": "",
        "mtunet/sub/__init__.py": "from .mod import helper\n",
        "mtunet/sub/mod.py": "class K:\n    def m(self):\n        from mtunet import kept\n"
        "def helper():\n    pass\n",
        "mtunet/sub/deep.py": "y = 1\n",
        "mtunet/lazy.py": "x = 1\nTABLE = 'table.csv'\n",
        "mtunet/data/table.csv": "a,b\n",
        "mtunet/data/other.csv": "a,b\n",
        "mtunet/kept.py": "",
        "mtunet/never.py": "",
        "mtunet/whole.py": "def g():\n    from mtunet import via_whole\n",
        "mtunet/via_whole.py": "",
        # Names loaded on first use: importing Heavy reaches heavy.py, never other.py.
        "mtunet/pkg/__init__.py": (
            "_LAZY = {'Heavy': 'mtunet.pkg.heavy', 'Spare': 'mtunet.pkg.other'}\n"
            "def __getattr__(name):\n    import importlib\n"
            "    return getattr(importlib.import_module(_LAZY[name]), name)\n"
        ),
        "mtunet/pkg/heavy.py": "Heavy = 1\n",
        "mtunet/pkg/other.py": "Spare = 1\n",
        "pipeline/run.py": (
            "import os\nfrom mtunet.a import used\nfrom mtunet.pkg import Heavy\n"
            "def main():\n    import mtunet.whole\n"
        ),
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  run:\n    foreach: [x]\n    do:\n      cmd: python pipeline/run.py ${item}\n"
        "      deps:\n        - pipeline/run.py\n        - mtunet/sub\n        - mtunet/a.py\n"
        "        - mtunet/never.py\n        - mtunet/gone.py\n        - mtunet/data/other.csv\n"
    )
    return tmp_path


def test_import_walk_on_a_toy_package(toy: Path) -> None:
    assert imported_files(toy / "pipeline/run.py", toy) == {
        "mtunet/__init__.py",
        "mtunet/a.py",  # from mtunet.a import used
        "mtunet/b.py",  # from . import b: the submodule
        "mtunet/sub/__init__.py",  # a package resolves to its __init__.py
        "mtunet/sub/mod.py",  # relative import in sub/__init__.py
        "mtunet/kept.py",  # inside a method: classes are always followed
        "mtunet/lazy.py",  # inside the imported function
        "mtunet/sub/deep.py",  # inside a function that function calls
        "mtunet/whole.py",  # inside the script's function: the whole module
        "mtunet/via_whole.py",  # inside a function of a module imported whole
        "mtunet/pkg/__init__.py",
        "mtunet/pkg/heavy.py",  # Heavy, loaded by pkg's __getattr__ from its _LAZY table
    }  # mtunet/never.py: only inside a function nothing imports or calls; pkg/other.py:
    # a lazy name nothing asks for
    # lazy.py names table.csv; nothing reached names other.csv.
    assert data_files(imported_files(toy / "pipeline/run.py", toy), toy) == {
        "mtunet/data/table.csv"
    }


def test_problems_name_each_missing_and_stale_file(toy: Path) -> None:
    stages = dvc_stages(toy)
    assert set(stages) == {"run@x"}
    problems = dep_problems("run@x", stages["run@x"], toy)
    assert problems == [
        "run@x: missing deps (imported, not listed): mtunet/__init__.py, mtunet/b.py, "
        "mtunet/data/table.csv, mtunet/kept.py, mtunet/lazy.py, mtunet/pkg/__init__.py, "
        "mtunet/pkg/heavy.py, mtunet/via_whole.py, mtunet/whole.py",
        "run@x: stale deps (listed, not imported): mtunet/sub/extra.py (in mtunet/sub), "
        "mtunet/never.py, mtunet/gone.py (no such file), mtunet/data/other.csv",
    ]
