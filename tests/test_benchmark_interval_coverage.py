"""The coverage benchmark: its result file, its choice, and the docs' tables quoting it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mtunet.fileio import read_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from interval_coverage import RESULT, choices, main, markdown

ROOT = Path(__file__).resolve().parents[1]


def _row(kind: str, scenario: str, family: str, n: int, method: str, cov: float) -> dict:
    return {
        "kind": kind,
        "scenario": scenario,
        "family": family,
        "n": n,
        "seeds": 1,
        "confidence": 0.95,
        "method": method,
        "coverage": cov,
        "median_width": 0.1,
    }


def test_choices_and_markdown_on_known_rows() -> None:
    rows = []
    for n, (t_tight, t_skewed) in {8: (0.94, 0.80), 20: (0.94, 0.88), 30: (0.95, 0.91)}.items():
        for method, shift in (
            ("t", 0.0),
            ("bca", -0.05),
            ("percentile", -0.06),
            ("basic", -0.07),
            ("bootstrap_t", 0.005),
        ):
            rows.append(_row("mean", "tight", "tight", n, method, t_tight + shift))
            rows.append(_row("mean", "skewed", "skewed", n, method, t_skewed + shift))
            rows.append(_row("mean", "bimodal", "bimodal", n, method, 0.95))
    chosen = choices(rows, 4000)["mean"]
    # 8: t meets tight (skewed not required); 20: none meets skewed, bootstrap-t's 0.5 point
    # lead is within Monte Carlo error: t, flagged; 30: t meets both.
    assert {n: (c["method"], c["meets_targets"]) for n, c in chosen["per_n"].items()} == {
        8: ("t", True),
        20: ("t", False),
        30: ("t", True),
    }
    assert chosen["table"] == [[2, None, "t"]]
    table = markdown({"rows": rows, "choice": {"mean": {"per_n": chosen["per_n"]}}}, "mean")
    lines = table.splitlines()
    assert lines[0] == "| n | t | BCa | percentile | basic | bootstrap-t |"
    assert lines[3].startswith("| 20 | **94.0 / 88.0 / 95.0** | 89.0 / 83.0 / 95.0 |")


def test_the_committed_result_and_the_docs_quote_it() -> None:
    result = read_json(RESULT)
    assert {"settings", "machine", "rows", "choice"} <= set(result)
    assert result["settings"]["n_studies"] >= 2000 and result["machine"]["scipy"]
    docs = (ROOT / "docs" / "statistics.md").read_text(encoding="utf-8")
    for kind, level in (
        ("mean", 0.95),
        ("difference", 0.95),
        ("difference", 0.99),
        ("seeds", 0.95),
    ):
        assert markdown(result, kind, level) in docs, (kind, level)
    assert "benchmarks/results/interval_coverage.json" in docs


@pytest.mark.slow
def test_a_small_run_writes_sorted_json(tmp_path: Path) -> None:
    out = tmp_path / "coverage.json"
    result = main(["--studies", "40", "--resamples", "50", "--n", "4", "--out", str(out)])
    stored = json.loads(out.read_text())
    assert len(stored["rows"]) == len(result["rows"])
    assert list(stored) == sorted(stored)
    assert stored["settings"]["grid_n"] == [4] and stored["settings"]["n_studies"] == 40
    kinds = {r["kind"] for r in stored["rows"]}
    assert kinds == {"mean", "difference", "seeds"}
    assert set(stored["choice"]) == {"mean", "difference", "seeds"}
    assert all(0 <= r["coverage"] <= 1 for r in stored["rows"])
