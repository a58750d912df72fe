"""The compare step: per-case tables of every run -> means, intervals, paired tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mtunet.comparison import build_comparison, run_comparison
from mtunet.fileio import write_json
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
        }
    )


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
    assert dsc["case_ci"][0] < dsc["mean"] < dsc["case_ci"][1]
    assert dsc["n_seeds"] == 2 and dsc["n_cases"] == len(CASES)
    assert comp["variants"]["unet"]["complexity"]["params"] == 14
    cls = comp["variants"]["mtunet"]["per_class"]["a"]["dsc"]
    assert cls["mean"] == pytest.approx(
        np.mean([truth[("mtunet", s)].query("class_name == 'a'").dice.mean() * 100 for s in (7, 9)])
    )


def test_paired_comparison_against_the_reference(tmp_path: Path, study: StudyConfig) -> None:
    truth = _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0, "win_size_2": 0.1})
    comp, _ = build_comparison(study, "synapse", tmp_path)
    (row,) = comp["comparisons"]["models"]["dsc"]
    assert row["variant"] == "unet"

    def case_means(v: str) -> np.ndarray:
        both = pd.concat([truth[(v, s)] for s in (7, 9)])
        return both.groupby("case").dice.mean().reindex(CASES).to_numpy() * 100

    diff = case_means("unet") - case_means("mtunet")
    assert row["diff"] == pytest.approx(diff.mean())
    assert row["ci_low"] <= row["diff"] <= row["ci_high"]
    assert row["p_value"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    assert row["p_holm"] == pytest.approx(row["p_value"])  # one comparison: Holm changes nothing
    # An ablation equal to the reference: a zero difference, not significant.
    (abl,) = comp["comparisons"]["ablations"]["dsc"]
    assert abl["diff"] == pytest.approx(0.0, abs=1e-9)
    assert abl["p_value"] == 1.0


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
    study = StudyConfig.from_dict({"seeds": [1], "n_bootstrap": 500})
    _fake_study(tmp_path, study, {"mtunet": 0.1, "unet": 0.0})
    comp, _ = build_comparison(study, "synapse", tmp_path)
    dsc = comp["variants"]["mtunet"]["dsc"]
    assert dsc["seed_ci"] is None and dsc["case_ci"] is not None
