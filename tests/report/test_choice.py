"""The method per n: the rule, the tables the benchmark chose, and a fresh simulation that
checks the tables' claims with another seed."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from mtunet.fileio import read_json
from mtunet.report.choice import (
    PREFERENCE,
    TABLES,
    applicable_targets,
    choose,
    coverage_at,
    coverage_settings,
    interval_record,
    margins,
    method_for,
    seed_interval_record,
    table_from_choices,
)
from mtunet.report.coverage import TARGETS

BENCHMARK = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "interval_coverage.json"
)
ORDER = ("t", "bca", "bootstrap_t")


def test_targets_apply_by_n() -> None:
    assert applicable_targets(4) == ["tight"]
    assert applicable_targets(19) == ["tight"]
    assert applicable_targets(20) == ["tight", "skewed"]
    assert margins({"tight": 0.95, "skewed": 0.5}, 8, 0.95) == {"tight": pytest.approx(0.02)}
    with pytest.raises(ValueError, match="skewed"):
        margins({"tight": 0.95}, 30, 0.95)


def test_choose_takes_the_first_method_that_meets_the_targets() -> None:
    cov = {
        "t": {"tight": 0.94, "skewed": 0.91},
        "bca": {"tight": 0.95, "skewed": 0.94},
        "bootstrap_t": {"tight": 0.96, "skewed": 0.95},
    }
    assert choose(cov, 30, 0.95, 4000, ORDER) == ("t", True)
    cov["t"]["skewed"] = 0.89  # t misses the skewed target: the next one that meets both
    assert choose(cov, 30, 0.95, 4000, ORDER) == ("bca", True)
    assert choose(cov, 12, 0.95, 4000, ORDER) == ("t", True)  # skewed does not apply at 12


def test_choose_when_no_method_meets_the_targets() -> None:
    cov = {
        "t": {"tight": 0.94, "skewed": 0.85},
        "bca": {"tight": 0.92, "skewed": 0.88},
        "bootstrap_t": {"tight": 0.95, "skewed": 0.86},
    }
    # Worst margins: t -0.05, bca -0.02, bootstrap_t -0.04: bca, flagged.
    assert choose(cov, 20, 0.95, 4000, ORDER) == ("bca", False)
    # Within Monte Carlo error (2 SE of a difference, 0.011 at 4000 studies) the preferred.
    cov["t"]["skewed"] = 0.875
    assert choose(cov, 20, 0.95, 4000, ORDER) == ("t", False)
    assert choose(cov, 20, 0.95, 100_000, ORDER) == ("bca", False)  # a finer simulation


def test_table_from_choices() -> None:
    assert table_from_choices({4: "t", 8: "t", 40: "t"}) == ((2, None, "t"),)
    assert table_from_choices({4: "bootstrap_t", 5: "t", 20: "t", 30: "bca", 40: "bca"}) == (
        (2, 4, "bootstrap_t"),
        (5, 29, "t"),
        (30, None, "bca"),
    )


def test_tables_cover_every_n_and_method_for() -> None:
    for kind, table in TABLES.items():
        assert table[0][0] == 2 and table[-1][1] is None
        for (_, last, _), (first, _, _) in itertools.pairwise(table):
            assert first == last + 1  # no gap, no overlap
        assert all(m in PREFERENCE[kind] for _, _, m in table)
        for n in (2, 3, 4, 7, 8, 12, 19, 20, 25, 40, 1000):
            assert method_for(kind, n) in PREFERENCE[kind]  # type: ignore[arg-type]
    # A difference's verdict needs the test its interval inverts: t-based methods only.
    assert {m for _, _, m in TABLES["difference"]} == {"t"}
    assert {m for _, _, m in TABLES["seeds"]} == {"t_seeds_cases"}
    with pytest.raises(ValueError, match="at least 2 cases"):
        method_for("mean", 1)
    with pytest.raises(ValueError, match="kind"):
        method_for("median", 8)  # type: ignore[arg-type]


def test_tables_are_the_committed_benchmarks_choice() -> None:
    result = read_json(BENCHMARK)
    assert result["settings"]["n_studies"] >= 2000
    assert result["settings"]["grid_n"] == [4, 5, 6, 8, 10, 12, 16, 20, 30, 40]
    for kind, table in TABLES.items():
        assert [tuple(r) for r in result["choice"][kind]["table"]] == list(table), kind
    # Every cell of the grid was simulated for every method.
    rows = result["rows"]
    for kind in ("mean", "difference"):
        cells = {
            (r["scenario"], r["n"], r["method"])
            for r in rows
            if r["kind"] == kind and r["confidence"] == 0.95
        }
        n_scenarios = len({r["scenario"] for r in rows if r["kind"] == kind})
        assert len(cells) == n_scenarios * 10 * len(PREFERENCE[kind])


def test_coverage_at_and_records() -> None:
    a = coverage_at("mean", 8, "t", 0.95, n_studies=300, seed=1)
    assert a == coverage_at("mean", 8, "t", 0.95, n_studies=300, seed=1)
    assert set(a["coverage_by_scenario"]) == {"tight", "skewed", "bimodal"}
    assert a["coverage"] == a["coverage_by_scenario"]
    assert a["target"] == {"tight": pytest.approx(0.93), "skewed": pytest.approx(0.90)}
    assert a["required"] == ["tight"]
    # At 8 cases no method reaches 90 % on failure-prone scores: flagged, not required.
    assert a["target_met"]["skewed"] is False and a["below_target"] is True
    d = coverage_at("difference", 20, "t", 0.975, n_studies=300)
    assert len(d["coverage_by_scenario"]) == 6  # equal and shifted per family: the worst
    assert d["coverage"]["skewed"] == min(
        d["coverage_by_scenario"]["skewed, equal"], d["coverage_by_scenario"]["skewed, shifted"]
    )
    assert d["target"]["skewed"] == pytest.approx(1 - 2 * 0.025)
    rec = interval_record("seeds", 8, "t_seeds_cases", 0.95, seeds=3, n_studies=300)
    assert rec["seeds"] == 3 and rec["method"] == "t_seeds_cases" and "seed_noise" in rec
    seed = seed_interval_record(3, 0.95)
    assert seed["simulated"] is False and seed["coverage"] == {"normal": 0.95}
    settings = coverage_settings(0.95, 2000, 2000, 0)
    assert settings["targets"]["skewed"]["coverage"] == pytest.approx(0.9)
    assert len(settings["scenarios"]) == 9


def _fresh(kind: str, n: int, seeds: int = 1) -> dict[str, float]:
    method = method_for(kind, n)  # type: ignore[arg-type]
    return coverage_at(kind, n, method, 0.95, seeds, n_studies=4000, seed=20240519)["coverage"]  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "n", "seeds"),
    [
        ("mean", 8, 1),
        ("mean", 12, 1),
        ("mean", 20, 1),
        ("mean", 30, 1),
        ("mean", 40, 1),
        ("difference", 4, 1),
        ("difference", 8, 1),
        ("difference", 20, 1),
        ("difference", 40, 1),
        ("seeds", 8, 3),
        ("seeds", 20, 2),
    ],
)
def test_the_chosen_method_does_what_the_benchmark_says(kind: str, n: int, seeds: int) -> None:
    """On studies simulated with another seed: where the benchmark says the chosen method
    meets a target it does (within 2.5 Monte Carlo SE of 4,000 studies), and where it says
    the method falls short (the interval is flagged) it does too."""
    per_n = read_json(BENCHMARK)["choice"][kind]["per_n"]
    claimed = per_n[str(n)]
    assert claimed["method"] == method_for(kind, n)  # type: ignore[arg-type]
    fresh = _fresh(kind, n, seeds)
    for family in applicable_targets(n):
        target = TARGETS[family].coverage(0.95)
        se = math.sqrt(target * (1 - target) / 4000)
        if claimed["coverage"][family] >= target:
            assert fresh[family] >= target - 2.5 * se, (family, fresh)
        else:
            assert fresh[family] < target + 2.5 * se, (family, fresh)
