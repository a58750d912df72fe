"""The compare step: per-case tables of every run -> means, intervals with their method and
simulated coverage, paired differences whose verdict is their drawn interval's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mtunet.comparison import build_comparison, run_comparison
from mtunet.data.manifest import case_units
from mtunet.fileio import write_json
from mtunet.report.choice import method_for
from mtunet.report.stats import paired_difference, significance, t_interval
from mtunet.study import StudyConfig, study_runs

CLASSES = ["background", "a", "b"]
CASES = ["c1", "c2", "c3", "c4", "c5", "c6"]


def _fake_study(root: Path, study: StudyConfig, offsets: dict[str, float]) -> dict:
    """Per-case tables whose Dice = base(case, class) + offset(variant) + 0.01 * seed index."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.8, size=(len(CASES), len(CLASSES)))
    truth: dict = {}
    for run in study_runs(study, "synapse", root):
        k = study.seeds.index(run.seed)
        rows = []
        for i, case in enumerate(CASES):
            for cid, name in enumerate(CLASSES):
                d = (
                    base[i, cid]
                    + offsets[run.variant]
                    + 0.01 * k
                    + 0.002 * i * (run.variant == "unet")
                )
                rows.append(
                    {
                        "case": case,
                        "class_id": cid,
                        "class_name": name,
                        "dice": d,
                        "hd95": 10 * (1 - d),
                        "hd95_mm": 20 * (1 - d),
                        "convention": "both",
                    }
                )
        df = pd.DataFrame(rows)
        run.eval_dir.mkdir(parents=True, exist_ok=True)
        df.to_csv(run.per_case, index=False)
        fg = df[df.class_id > 0]
        summary = {
            "dsc": fg.groupby("class_name").dice.mean().mean() * 100,
            "hd95": fg.groupby("class_name").hd95.mean().mean(),
            "hd95_mm": fg.groupby("class_name").hd95_mm.mean().mean(),
            "n_cases": len(CASES),
            "per_class": {
                c: {
                    "dsc": fg[fg.class_name == c].dice.mean() * 100,
                    "hd95": fg[fg.class_name == c].hd95.mean(),
                    "hd95_mm": None,
                }
                for c in CLASSES[1:]
            },
        }
        write_json(run.metrics, summary)
        write_json(run.train_info, {"complexity": {"params": 10 + len(run.variant), "gflops": 0.5}})
        truth[(run.variant, run.seed)] = fg
    return truth


@pytest.fixture
def study() -> StudyConfig:
    return StudyConfig.from_dict(
        {
            "models": ["mtunet", "unet"],
            "seeds": [7, 9],
            "ablations": {"win_size_2": {"win_size": 2}},
            "n_bootstrap": 2000,
            "coverage_studies": 300,
        }
    )


def _check_record(rec: dict, kind: str, n: int, confidence: float) -> None:
    """An interval's record: method, n, level, simulated coverage, targets and the flag."""
    assert rec["kind"] == kind and rec["n"] == n and rec["simulated"] is True
    assert rec["confidence"] == pytest.approx(confidence)
    assert set(rec["coverage"]) == {"tight", "skewed", "bimodal"}
    assert all(0.0 <= v <= 1.0 for v in rec["coverage"].values())
    assert set(rec["target"]) == {"tight", "skewed"}
    assert rec["required"] == (["tight", "skewed"] if n >= 20 else ["tight"])
    assert rec["target_met"] == {f: rec["coverage"][f] >= t for f, t in rec["target"].items()}
    assert rec["below_target"] == (not all(rec["target_met"].values()))
    assert rec["n_studies"] == 300


def test_means_and_intervals_follow_their_definitions(tmp_path: Path, study: StudyConfig) -> None:
    truth = _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.1})
    comp, table = build_comparison(study, "synapse", tmp_path)
    assert set(table["class_name"]) == {"a", "b"}  # background dropped
    dsc = comp["variants"]["unet"]["dsc"]
    per_seed = [truth[("unet", s)].dice.mean() * 100 for s in (7, 9)]
    assert dsc["per_seed"] == pytest.approx(per_seed)
    assert dsc["mean"] == pytest.approx(np.mean(per_seed))
    lo, hi = stats.t.interval(0.95, 1, loc=np.mean(per_seed), scale=stats.sem(per_seed))
    assert dsc["seed_ci"] == pytest.approx([lo, hi])
    case_means = np.mean([truth[("unet", s)].groupby("case").dice.mean() * 100 for s in (7, 9)], 0)
    assert method_for("mean", len(CASES)) == "t"
    assert dsc["case_ci"] == pytest.approx(list(t_interval(case_means)[1:]))
    _check_record(dsc["case_interval"], "mean", len(CASES), 0.95)
    assert dsc["case_interval"]["method"] == "t"
    seed_rec = dsc["seed_interval"]
    assert seed_rec["method"] == "t" and seed_rec["n"] == 2 and seed_rec["simulated"] is False
    assert dsc["n_seeds"] == 2 and dsc["n_cases"] == len(CASES)
    assert comp["variants"]["unet"]["complexity"]["params"] == 14
    cls = comp["variants"]["mtunet"]["per_class"]["a"]["dsc"]
    assert cls["mean"] == pytest.approx(
        np.mean([truth[("mtunet", s)].query("class_name == 'a'").dice.mean() * 100 for s in (7, 9)])
    )


def test_paired_comparison_against_the_reference(tmp_path: Path, study: StudyConfig) -> None:
    truth = _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.1})
    comp, _ = build_comparison(study, "synapse", tmp_path)
    assert comp["adjustment"] == "bonferroni" and comp["alpha"] == pytest.approx(0.05)
    (row,) = comp["comparisons"]["models"]["dsc"]
    assert row["variant"] == "unet"

    def table(v: str) -> np.ndarray:  # (seeds, cases) in % points
        return np.array(
            [truth[(v, s)].groupby("case").dice.mean().reindex(CASES) * 100 for s in (7, 9)]
        )

    # Two seeds: the interval carries seeds and cases; one comparison: the 95 % level.
    ref = paired_difference(table("unet"), table("mtunet"), 0.95)
    assert row["method"] == "t_seeds_cases" and row["sources"] == ["seeds", "cases"]
    assert row["n"] == len(CASES) and row["n_seeds"] == [2, 2] and row["m"] == 1
    assert row["diff"] == pytest.approx((table("unet") - table("mtunet")).mean())
    for key in ("diff", "ci_low", "ci_high", "p_value"):
        assert row[key] == pytest.approx(ref[key])
    assert row["confidence"] == pytest.approx(0.95) and row["p_adjusted"] == row["p_value"]
    # 10 points lower in every case and seed: significantly lower, by the drawn interval.
    assert row["ci_high"] < 0 and row["verdict"] == "lower" and row["significant"] is True
    _check_record(row["coverage"], "seeds", len(CASES), 0.95)
    assert row["coverage"]["seeds"] == 2 and row["coverage"]["method"] == "t_seeds_cases"
    # An ablation equal to the reference: a zero difference, not significant.
    (abl,) = comp["comparisons"]["ablations"]["dsc"]
    assert abl["diff"] == pytest.approx(0.0, abs=1e-9)
    assert abl["p_value"] == pytest.approx(1.0) and abl["verdict"] == "none"
    assert abl["significant"] is False


def test_a_family_of_comparisons_is_bonferroni_adjusted(tmp_path: Path) -> None:
    study = StudyConfig.from_dict(
        {
            "models": ["mtunet", "unet"],
            "seeds": [1],
            "ablations": {"win_size_2": {"win_size": 2}, "no_gaussian": {"gaussian": False}},
            "coverage_studies": 300,
        }
    )
    _fake_study(
        tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.097, "no_gaussian": 0.1}
    )
    comp, _ = build_comparison(study, "synapse", tmp_path)
    rows = comp["comparisons"]["ablations"]["hd95"]
    assert [r["variant"] for r in rows] == ["win_size_2", "no_gaussian"]
    for r in rows:
        # One seed: the paired t over cases, at the level of a family of 2.
        assert r["method"] == "t" and r["sources"] == ["cases"] and r["m"] == 2
        assert r["confidence"] == pytest.approx(0.975)
        assert r["p_adjusted"] == pytest.approx(min(1.0, 2 * r["p_value"]))
        verdict = significance(r["diff"], r["ci_low"], r["ci_high"], r["p_adjusted"])
        assert r["verdict"] == verdict != "unclear"
        assert r["significant"] == (r["ci_low"] > 0 or r["ci_high"] < 0)
        _check_record(r["coverage"], "difference", len(CASES), 0.975)
    # win_size_2 scores 0.3 Dice points lower on every case: HD95 (10 * (1 - Dice)) higher.
    assert rows[0]["verdict"] == "higher" and rows[0]["ci_low"] > 0


def test_cases_a_seed_did_not_score_leave_the_comparison(
    tmp_path: Path, study: StudyConfig
) -> None:
    _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.1})
    run = next(r for r in study_runs(study, "synapse", tmp_path) if r.variant == "unet")
    df = pd.read_csv(run.per_case)
    df.loc[df.case == "c2", "dice"] = np.nan  # one seed of unet has no Dice on c2
    df.to_csv(run.per_case, index=False)
    comp, _ = build_comparison(study, "synapse", tmp_path)
    (row,) = comp["comparisons"]["models"]["dsc"]
    assert row["n"] == len(CASES) - 1 and row["coverage"]["n"] == len(CASES) - 1
    # The variant's own mean still uses every case some seed scored.
    assert comp["variants"]["unet"]["dsc"]["n_cases"] == len(CASES)


def test_metrics_file_keeps_the_reference_summary(tmp_path: Path, study: StudyConfig) -> None:
    _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.05})
    metrics = tmp_path / "metrics" / "synapse.json"
    run_comparison(
        study,
        "synapse",
        tmp_path,
        tmp_path / "compare" / "synapse",
        metrics,
        {"dsc": 12.0},
        {"splits": {"test": CASES}},
    )
    m = json.loads(metrics.read_text())
    runs = [json.loads(r.metrics.read_text()) for r in study_runs(study, "synapse", tmp_path)[:2]]
    assert m["dsc"] == pytest.approx(np.mean([r["dsc"] for r in runs]))
    assert m["per_class"]["b"]["dsc"] == pytest.approx(
        np.mean([r["per_class"]["b"]["dsc"] for r in runs])
    )
    assert m["per_class"]["b"]["hd95_mm"] is None
    assert m["model"] == "mtunet" and m["seeds"] == [7, 9]
    assert set(m["models"]) == {"mtunet", "unet"} and set(m["ablations"]) == {"win_size_2"}
    unet = m["models"]["unet"]["dsc"]
    assert unet["interval"] == "seeds" and unet["ci_low"] < unet["mean"] < unet["ci_high"]
    assert unet["method"] == "t" and unet["n"] == 2 and unet["below_target"] is False
    assert unet["coverage"] == {"normal": 0.95}
    assert m["threshold_baseline"] == {"dsc": 12.0}
    comp = json.loads((tmp_path / "compare" / "synapse" / "comparison.json").read_text())
    assert comp["dataset_info"]["splits"]["test"] == CASES
    long = pd.read_csv(tmp_path / "compare" / "synapse" / "per_case.csv")
    assert len(long) == 3 * 2 * len(CASES) * 2
    assert list(json.loads(metrics.read_text())) == sorted(m)


def test_a_missing_run_is_named(tmp_path: Path, study: StudyConfig) -> None:
    _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.05})
    missing = study_runs(study, "synapse", tmp_path)[3].per_case
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=r"unet/seed9/per_case\.csv: missing"):
        build_comparison(study, "synapse", tmp_path)


def test_one_seed_gives_case_intervals_only(tmp_path: Path) -> None:
    study = StudyConfig.from_dict({"seeds": [1], "n_bootstrap": 500, "coverage_studies": 300})
    _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0})
    comp, _ = build_comparison(study, "synapse", tmp_path)
    dsc = comp["variants"]["mtunet"]["dsc"]
    assert dsc["seed_ci"] is None and dsc["case_ci"] is not None
    assert dsc["seed_interval"] is None and dsc["case_interval"]["method"] == "t"
    (row,) = comp["comparisons"]["models"]["dsc"]
    assert row["method"] == "t" and row["n_seeds"] == [1, 1]
    metrics = run_comparison(
        study,
        "synapse",
        tmp_path,
        tmp_path / "compare" / "synapse",
        tmp_path / "metrics" / "synapse.json",
        None,
    )
    entry = json.loads((tmp_path / "metrics" / "synapse.json").read_text())["models"]["unet"]
    assert entry["dsc"]["interval"] == "cases" and entry["dsc"]["method"] == "t"
    assert entry["dsc"]["n"] == len(CASES)
    assert set(entry["dsc"]["coverage"]) == {"tight", "skewed", "bimodal"}
    assert metrics["comparisons"]["models"]["dsc"][0]["verdict"] == "lower"


def test_patients_are_the_unit_when_cases_share_one(tmp_path: Path) -> None:
    """Two volumes of one patient (ACDC's ED and ES) are one unit of the intervals and tests:
    the unit's score is its cases' mean, and n counts patients."""
    study = StudyConfig.from_dict({"seeds": [1], "n_bootstrap": 500, "coverage_studies": 300})
    truth = _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0})
    units = case_units(
        {"cases": CASES, "patients": ["p1", "p2", "p3"]}
    )  # no case extends these names: every case stays its own unit
    assert units == {c: c for c in CASES}
    units = {c: f"p{i // 2 + 1}" for i, c in enumerate(CASES)}  # c1, c2 -> p1; ...
    comp, table = build_comparison(study, "synapse", tmp_path, units)
    assert comp["unit"] == "patient" and comp["n_units"] == 3 and comp["n_test_cases"] == 6
    assert set(table["case"]) == set(CASES)  # the long table keeps the cases
    dsc = comp["variants"]["unet"]["dsc"]
    by_case = truth[("unet", 1)].groupby("case").dice.mean().reindex(CASES).to_numpy() * 100
    by_patient = by_case.reshape(3, 2).mean(axis=1)
    assert dsc["n_cases"] == 3 and dsc["mean"] == pytest.approx(by_case.mean())
    assert dsc["case_ci"] == pytest.approx(list(t_interval(by_patient)[1:]))
    (row,) = comp["comparisons"]["models"]["dsc"]
    ref = truth[("mtunet", 1)].groupby("case").dice.mean().reindex(CASES).to_numpy() * 100
    diff = (by_case - ref).reshape(3, 2).mean(axis=1)
    assert row["n"] == 3 and row["diff"] == pytest.approx(diff.mean())
    assert [row["ci_low"], row["ci_high"]] == pytest.approx(list(t_interval(diff)[1:]))
    plain, _ = build_comparison(study, "synapse", tmp_path)
    assert plain["unit"] == "case" and plain["variants"]["unet"]["dsc"]["n_cases"] == 6


def test_case_units_follow_the_patient_names() -> None:
    split = {
        "cases": ["patient002_ED", "patient002_ES", "patient010_frame01", "case_019_ED", "x"],
        "patients": ["patient002", "patient010", "case_019", "patient001"],
    }
    assert case_units(split) == {
        "patient002_ED": "patient002",
        "patient002_ES": "patient002",
        "patient010_frame01": "patient010",
        "case_019_ED": "case_019",
        "x": "x",
    }
    assert case_units({"cases": ["case0001", "case0002"]}) == {
        "case0001": "case0001",
        "case0002": "case0002",
    }
