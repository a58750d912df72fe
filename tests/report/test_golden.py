"""The report of the fake study, byte for byte against the committed copy in ``golden/``.

Three studies, each in ``golden/<name>/``: ``full`` (both datasets, every input), ``notes``
(optional inputs missing: the notes section, no split, no surface table) and
``other_reference`` plus ``single_model`` (the wording of the rarer branches). Each is built
as the ``report`` stage builds it, from the study root with relative paths.

The golden files were written by the code before the report became a template; the template
and any later change must give the same ``report.md``, tables (CSV and LaTeX) and figure data,
or change the golden copy in a commit of its own that says why. To rewrite the copy after an
intended change::

    MTUNET_UPDATE_GOLDEN=1 python -m pytest -q tests/report/test_golden.py

(the test then fails, saying what it rewrote; rerun it without the variable). The copy holds
full-precision numbers (the CSV files), so it belongs to the pinned environment
(numpy, scipy, pandas) it was written with. Figures (PNG) are not compared: their pixels
depend on the fonts and matplotlib's version.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_study import drop_optional_inputs, keep_one_model, make_unet_the_reference

from mtunet.report.report import build_report

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MTUNET_UPDATE_GOLDEN") == "1"
MAX_DIFF_LINES = 60


def _compared(reports: Path) -> dict[str, bytes]:
    """The files under a report folder that the golden copy holds, by relative path."""
    files = [reports / "report.md"]
    files += sorted((reports / "tables").glob("*.csv")) + sorted((reports / "tables").glob("*.tex"))
    files += sorted((reports / "figures").glob("*.csv"))
    return {p.relative_to(reports).as_posix(): p.read_bytes() for p in files if p.is_file()}


def _first_differences(name: str, want: bytes, got: bytes) -> str:
    """A unified diff of ``want`` (golden) and ``got`` (built), cut after its first lines."""
    diff = list(
        difflib.unified_diff(
            want.decode("utf-8", "replace").splitlines(),
            got.decode("utf-8", "replace").splitlines(),
            f"golden/{name}",
            f"built/{name}",
            lineterm="",
        )
    )
    if not diff:  # same lines: the bytes differ in line endings or a final newline
        return f"{name}: same lines, other bytes (line endings or the final newline)"
    more = len(diff) - MAX_DIFF_LINES
    return "\n".join(
        diff[:MAX_DIFF_LINES] + ([f"... ({more} more diff lines)"] if more > 0 else [])
    )


def _rewrite(golden: Path, built: dict[str, bytes]) -> None:
    shutil.rmtree(golden, ignore_errors=True)
    for name, data in built.items():
        path = golden / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _nothing(root: Path) -> None:
    """The full study as it is."""


# name -> (what to change in the study, the datasets reported, the fewest files compared)
SCENARIOS: dict[str, tuple[Callable[[Path], Any], list[str], int]] = {
    "full": (_nothing, ["synapse", "acdc"], 27),
    "notes": (drop_optional_inputs, ["synapse", "acdc"], 24),
    "other_reference": (make_unet_the_reference, ["synapse"], 12),
    "single_model": (keep_one_model, ["acdc"], 8),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_report_matches_golden(
    name: str, repo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    change, datasets, n_files = SCENARIOS[name]
    root = repo["root"]
    change(root)
    monkeypatch.chdir(root)  # as the stage runs: relative paths in the notes
    build_report(datasets, Path("."), Path("params.yaml"), Path("reports"), Path("."))
    built = _compared(root / "reports")
    assert "report.md" in built and len(built) >= n_files, sorted(built)
    folder = GOLDEN / name
    if UPDATE:
        _rewrite(folder, built)
        pytest.fail(f"MTUNET_UPDATE_GOLDEN=1: rewrote {len(built)} files under {folder}; rerun")
    golden = _compared(folder)
    assert golden, f"{folder}: no golden copy (write one with MTUNET_UPDATE_GOLDEN=1)"
    missing, extra = sorted(golden.keys() - built.keys()), sorted(built.keys() - golden.keys())
    assert not missing and not extra, f"files not built: {missing}; files not in golden: {extra}"
    differing = [f for f in golden if golden[f] != built[f]]
    assert not differing, f"{len(differing)} file(s) differ from {folder}: {differing}\n" + (
        "\n\n".join(_first_differences(f, golden[f], built[f]) for f in differing[:3])
    )
