"""The study's comparison of one dataset: every run's per-case scores -> intervals and tests.

Stage ``compare@<ds>`` reads each run's ``eval/<ds>/<variant>/seed<k>/per_case.csv`` and
``models/<ds>/<variant>/seed<k>/train.json`` and writes:

- ``compare/<ds>/per_case.csv``: one row per variant, seed, case and class (the long table);
- ``compare/<ds>/comparison.json``: per variant the mean DSC, HD95 (three conventions) and
  surface Dice with intervals over seeds and over cases, per class; parameters and GFLOPs; and
  every model and ablation against the reference model, paired on the test cases;
- ``metrics/<ds>.json``: the DVC metrics file. Its top level is the reference model's summary
  (means over seeds, so ``dvc exp show`` keeps its columns), plus ``models`` and
  ``ablations`` with each variant's mean and interval bounds, and the threshold baseline.

A case's score is the mean over foreground classes of that case (NaN entries left out), the
published tables' mean; the dataset's score is the mean over cases. Intervals (level
``study.confidence``): over seeds, a Student-t interval of the per-seed means (two seeds or
more); over test cases, the interval of the seed-averaged case scores by the method
:mod:`mtunet.report.choice` gives for that number of cases. Comparisons pair a variant and
the reference on the cases both scored in every seed: the mean difference with its t interval
(with several seeds, over seeds and cases) and that interval's own p-value. Within each table
(models; ablations) and metric the m comparisons are corrected by Bonferroni: each interval is
drawn at level ``1 - alpha / m`` and a difference is significant exactly when that interval
excludes 0 (Holm would reject more, but has no intervals that agree with its decisions).

Every interval carries a record of its method, number of cases (or seeds), level and its
coverage simulated at exactly that n and method (:func:`mtunet.report.choice.coverage_at`, on
the tight, skewed and bimodal Dice-like scenarios of :mod:`mtunet.report.coverage`), with the
coverage targets and a flag when it falls below one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtunet.fileio import atomic_path, read_json, write_json
from mtunet.report.choice import (
    TABLES,
    coverage_settings,
    interval_record,
    seed_interval_record,
)
from mtunet.report.stats import (
    adjusted_confidence,
    bonferroni,
    case_interval,
    paired_difference,
    significance,
    t_interval,
)
from mtunet.study import RunPaths, StudyConfig, study_runs

# Metric column -> (name in the JSON, scale to its unit).
METRICS: dict[str, tuple[str, float]] = {
    "dice": ("dsc", 100.0),
    "hd95": ("hd95", 1.0),
    "hd95_monai": ("hd95_monai", 1.0),
    "nsd": ("nsd", 100.0),
}
# The metrics the comparison tables test (the others are described, not tested).
TESTED = ("dsc", "hd95")


def load_runs(runs: Sequence[RunPaths]) -> pd.DataFrame:
    """Concatenate the runs' per-case tables, tagged with ``variant`` and ``seed``.

    Raises:
        FileNotFoundError: A run has no per-case table (it was not evaluated).
    """
    frames = []
    for run in runs:
        if not run.per_case.is_file():
            raise FileNotFoundError(
                f"{run.per_case}: missing; run `dvc repro` so that every run of the study is "
                "trained and evaluated"
            )
        df = pd.read_csv(run.per_case)
        df.insert(0, "seed", run.seed)
        df.insert(0, "variant", run.variant)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    return table[table["class_id"] > 0].reset_index(drop=True)


def case_scores(
    table: pd.DataFrame,
    column: str,
    cls: str | None = None,
    units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per variant, seed and case: the mean over classes of ``column`` (or one class's value).

    Args:
        table: The long per-case table (:func:`load_runs`).
        column: The metric column.
        cls: One class's values instead of the mean over classes.
        units: Case -> the independent unit it belongs to (ACDC: its patient, whose ED and
            ES volumes are not two independent cases); each unit's score is the mean of its
            cases' scores. Cases not listed are units of their own.

    Returns:
        A frame indexed by (variant, seed, case) with one column ``score``; with ``units``
        the ``case`` level holds the units.
    """
    sub = table if cls is None else table[table["class_name"] == cls]
    values = pd.to_numeric(sub[column], errors="coerce")
    grouped = values.groupby([sub["variant"], sub["seed"], sub["case"]], sort=False)
    scores = grouped.mean().rename("score")
    if units:
        case = scores.index.get_level_values("case")
        unit = pd.Index([units.get(c, c) for c in case], name="case")
        keys = [
            scores.index.get_level_values("variant"),
            scores.index.get_level_values("seed"),
            unit,
        ]
        scores = scores.groupby(keys, sort=False).mean()
    return scores.to_frame()


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _bounds(low: float, high: float) -> list[float] | None:
    """``[low, high]``, or None when a bound is not finite (no usable interval)."""
    return [float(low), float(high)] if np.isfinite([low, high]).all() else None


def _record(
    kind: str, n: int, method: str, confidence: float, study: StudyConfig, seeds: int = 1
) -> dict[str, Any]:
    """:func:`mtunet.report.choice.interval_record` with the study's simulation settings."""
    return interval_record(
        kind,  # type: ignore[arg-type]
        n,
        method,
        confidence,
        seeds,
        study.coverage_studies,
        study.coverage_resamples,
        study.bootstrap_seed,
    )


def describe_scores(
    scores: pd.DataFrame, variant: str, study: StudyConfig, scale: float
) -> dict[str, Any]:
    """Mean and intervals of one variant from its (variant, seed, case) scores.

    Returns:
        ``{"mean", "seed_ci": [lo, hi] | None, "case_ci": [lo, hi] | None, "seed_interval",
        "case_interval" (each :func:`interval_record`-like or None), "n_seeds", "n_cases",
        "per_seed": [...]}`` in the metric's unit (``scale`` applied). An interval needs two
        seeds (seeds) or two cases (cases).
    """
    s = scores.xs(variant, level="variant")["score"] * scale
    per_seed = s.groupby(level="seed", sort=False).mean()
    per_case = s.groupby(level="case", sort=False).mean()
    seeds = _finite(per_seed.to_numpy(np.float64))
    cases = _finite(per_case.to_numpy(np.float64))
    out: dict[str, Any] = {
        "mean": float(cases.mean()) if cases.size else None,
        "n_seeds": int(seeds.size),
        "n_cases": int(cases.size),
        "per_seed": [float(v) for v in seeds],
        "seed_ci": None,
        "case_ci": None,
        "seed_interval": None,
        "case_interval": None,
    }
    if seeds.size >= 2:
        _, lo, hi = t_interval(seeds, study.confidence)
        out["seed_ci"] = _bounds(lo, hi)
        out["seed_interval"] = seed_interval_record(seeds.size, study.confidence)
    if cases.size >= 2:
        _, lo, hi, method = case_interval(
            cases, study.confidence, study.n_bootstrap, study.bootstrap_seed
        )
        assert method is not None  # two cases or more always have a method
        out["case_ci"] = _bounds(lo, hi)
        out["case_interval"] = _record("mean", cases.size, method, study.confidence, study)
    return out


def seed_case_table(scores: pd.DataFrame, variant: str, scale: float) -> pd.DataFrame:
    """One variant's scores as a (case x seed) table in the metric's unit."""
    s = scores.xs(variant, level="variant")["score"] * scale
    return s.unstack("seed")


def compare_to_reference(
    scores: pd.DataFrame,
    variants: Sequence[str],
    reference: str,
    study: StudyConfig,
    scale: float,
) -> list[dict[str, Any]]:
    """Each variant against ``reference``, paired on the cases both score in every seed.

    The m = ``len(variants)`` comparisons form one Bonferroni family at ``study.confidence``:
    each row's interval is at :func:`adjusted_confidence` and its verdict is
    :func:`significance` of that interval.

    Returns:
        Per variant: :func:`mtunet.report.stats.paired_difference`'s fields plus ``variant``,
        ``m``, ``adjustment`` (``"bonferroni"``), ``family_confidence``, ``alpha``,
        ``p_adjusted``, ``verdict`` (``"higher"``, ``"lower"`` or ``"none"``),
        ``significant`` and ``coverage`` (:func:`interval_record`, None below 2 cases).
    """
    ref = seed_case_table(scores, reference, scale)
    m = len(variants)
    level = adjusted_confidence(study.confidence, m)
    alpha = round(1.0 - study.confidence, 12)
    rows: list[dict[str, Any]] = []
    for variant in variants:
        other = seed_case_table(scores, variant, scale)
        both = pd.concat({"a": other, "b": ref}, axis=1, join="inner").dropna()
        a = both["a"].to_numpy(np.float64).T  # (seeds, cases)
        b = both["b"].to_numpy(np.float64).T
        res = paired_difference(a, b, level) if len(both) else _no_cases(a, b, level)
        record = None
        if res["n"] >= 2:
            several = res["method"] == "t_seeds_cases"
            record = _record(
                "seeds" if several else "difference",
                res["n"],
                res["method"],
                level,
                study,
                min(res["n_seeds"]),
            )
        rows.append(
            {
                "variant": variant,
                **{k: _plain(v) for k, v in res.items()},
                "m": m,
                "adjustment": "bonferroni",
                "family_confidence": study.confidence,
                "alpha": alpha,
                "coverage": record,
            }
        )
    for row, p in zip(rows, bonferroni([r["p_value"] for r in rows]), strict=True):
        row["p_adjusted"] = p
        row["verdict"] = significance(row["diff"], row["ci_low"], row["ci_high"], p, alpha)
        row["significant"] = row["verdict"] in ("higher", "lower")
    return rows


def _no_cases(a: np.ndarray, b: np.ndarray, level: float) -> dict[str, Any]:
    """The row of a comparison without a case both sides scored."""
    nan = float("nan")
    return {
        "diff": nan,
        "ci_low": nan,
        "ci_high": nan,
        "p_value": nan,
        "se": nan,
        "df": nan,
        "n": 0,
        "n_seeds": [a.shape[0], b.shape[0]],
        "method": None,
        "sources": [],
        "confidence": level,
    }


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    return v


def _complexity(run: RunPaths) -> dict[str, Any] | None:
    if not run.train_info.is_file():
        return None
    info = read_json(run.train_info)
    return info.get("complexity")


def build_comparison(
    study: StudyConfig, dataset: str, root: Path, units: Mapping[str, str] | None = None
) -> tuple[dict, pd.DataFrame]:
    """The comparison of one dataset (see the module docstring) and its long per-case table.

    ``units`` (:func:`case_scores`) makes the intervals and tests count independent units
    (patients) instead of cases (volumes); the means are those of the units' means.
    """
    runs = study_runs(study, dataset, root)
    table = load_runs(runs)
    cases = list(dict.fromkeys(table["case"].astype(str)))
    units = {c: u for c, u in (units or {}).items() if c in set(cases) and u != c} or None
    class_names = list(dict.fromkeys(table["class_name"]))
    metrics = [m for m in METRICS if m in table.columns]
    variants: dict[str, Any] = {}
    for variant in study.variants:
        first = next(r for r in runs if r.variant == variant)
        entry: dict[str, Any] = {
            "kind": study.kind(variant),
            "overrides": dict(study.ablations.get(variant, {})),
            "seeds": list(study.seeds),
            "complexity": _complexity(first),
            "per_class": {},
        }
        variants[variant] = entry
    for column in metrics:
        name, scale = METRICS[column]
        scores = case_scores(table, column, units=units)
        by_class = {cls: case_scores(table, column, cls, units) for cls in class_names}
        for variant in study.variants:
            variants[variant][name] = describe_scores(scores, variant, study, scale)
            for cls, cls_scores in by_class.items():
                stats = describe_scores(cls_scores, variant, study, scale)
                variants[variant]["per_class"].setdefault(cls, {})[name] = stats
    others = [m for m in study.models if m != study.reference]
    ablations = list(study.ablations)
    comparisons: dict[str, Any] = {"models": {}, "ablations": {}}
    for column in metrics:
        name, scale = METRICS[column]
        if name not in TESTED:
            continue
        scores = case_scores(table, column, units=units)
        # Ablations vary MT-UNet, so they are compared with the full MT-UNet.
        for key, group, ref in (
            ("models", others, study.reference),
            ("ablations", ablations, "mtunet"),
        ):
            if group:
                comparisons[key][name] = compare_to_reference(scores, group, ref, study, scale)
    comparison = {
        "dataset": dataset,
        "reference": study.reference,
        "ablation_reference": "mtunet" if ablations else None,
        "class_names": class_names,
        # What the intervals and tests count: test cases, or the patients they belong to.
        "unit": "patient" if units else "case",
        "n_test_cases": len(cases),
        "n_units": len({(units or {}).get(c, c) for c in cases}),
        "confidence": study.confidence,
        "alpha": round(1.0 - study.confidence, 12),
        "adjustment": "bonferroni",
        "n_bootstrap": study.n_bootstrap,
        "interval_methods": {k: [list(r) for r in v] for k, v in TABLES.items()},
        "coverage_simulation": coverage_settings(
            study.confidence, study.coverage_studies, study.coverage_resamples, study.bootstrap_seed
        ),
        "variants": variants,
        "comparisons": comparisons,
    }
    return comparison, table


def _interval_entry(stats: dict[str, Any]) -> dict[str, Any]:
    ci = stats["seed_ci"] or stats["case_ci"] or [None, None]
    record = (stats["seed_interval"] if stats["seed_ci"] else stats["case_interval"]) or {}
    return {
        "mean": stats["mean"],
        "ci_low": ci[0],
        "ci_high": ci[1],
        "interval": "seeds" if stats["seed_ci"] else "cases",
        "method": record.get("method"),
        "n": record.get("n"),
        "coverage": record.get("coverage"),
        "below_target": record.get("below_target"),
    }


def metrics_file(
    comparison: dict[str, Any],
    study: StudyConfig,
    dataset: str,
    root: Path,
    threshold_baseline: dict[str, Any] | None,
) -> dict[str, Any]:
    """``metrics/<ds>.json``: the reference model's summary, then every variant's intervals."""
    ref_runs = [r for r in study_runs(study, dataset, root) if r.variant == study.reference]
    summaries = [read_json(r.metrics) for r in ref_runs]
    top = dict(summaries[0])
    for key in ("dsc", "hd95", "hd95_mm"):
        vals = [s.get(key) for s in summaries]
        top[key] = None if any(v is None for v in vals) else float(np.mean(vals))
    for cls, entry in top.get("per_class", {}).items():
        for key in list(entry):
            vals = [s["per_class"][cls].get(key) for s in summaries]
            entry[key] = None if any(v is None for v in vals) else float(np.mean(vals))
    top["model"] = study.reference
    top["seeds"] = list(study.seeds)
    for kind, names in (("models", study.models), ("ablations", list(study.ablations))):
        top[kind] = {
            v: {
                m: _interval_entry(comparison["variants"][v][m])
                for m in ("dsc", "hd95")
                if m in comparison["variants"][v]
            }
            for v in names
        }
    if threshold_baseline is not None:
        top["threshold_baseline"] = threshold_baseline
    return top


def run_comparison(
    study: StudyConfig,
    dataset: str,
    root: Path,
    out_dir: Path,
    metrics_path: Path,
    threshold_baseline: dict[str, Any] | None,
    dataset_info: dict[str, Any] | None = None,
    nsd_tolerance: float | None = None,
    units: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/comparison.json``, ``out_dir/per_case.csv`` and ``metrics_path``.

    ``dataset_info`` (the manifest's ``splits`` and ``class_names``) is copied into the
    comparison, so the report needs no dataset files; ``units`` as in
    :func:`build_comparison`.
    """
    comparison, table = build_comparison(study, dataset, root, units)
    comparison["dataset_info"] = dict(dataset_info or {})
    comparison["threshold_baseline"] = threshold_baseline
    comparison["nsd_tolerance"] = nsd_tolerance
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "per_case.csv") as tmp:
        table.to_csv(tmp, index=False)
    # write_json turns NaN into null.
    write_json(out_dir / "comparison.json", comparison)
    write_json(metrics_path, metrics_file(comparison, study, dataset, root, threshold_baseline))
    return comparison
