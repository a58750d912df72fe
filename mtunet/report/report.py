"""``reports/report.md``: the study's comparison per dataset, experiments, figures, protocol.

Per dataset: the models with their size and intervals, their differences to the reference
(table and forest plot), Dice per case by model, the ablations, the surface-distance
conventions, the reference model in detail (per class, training curves, slices of its first
seed) and the published numbers on the real data in a table of their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from mtunet.config import check, from_dict, load_params, to_dict
from mtunet.fileio import atomic_path, read_json, write_text
from mtunet.report import plots
from mtunet.report.experiments import collect_experiments, comparison_rows
from mtunet.report.published import PAPER_SETUP, PUBLISHED_NOTES
from mtunet.report.tables import (
    ALPHA,
    Table,
    ablation_table,
    data_label,
    difference_table,
    fmt,
    interval_text,
    models_table,
    per_class_table,
    published_table,
    surface_table,
    to_markdown,
    variant_label,
    verdict,
    write_both,
    write_table,
)
from mtunet.study import RunPaths

TITLES = {"synapse": "Synapse multi-organ CT", "acdc": "ACDC cardiac MRI"}


@dataclass(frozen=True)
class ReportConfig:
    """``report`` section of ``params.yaml``.

    Attributes:
        title: Heading of ``report.md``.
        max_qualitative: Slices shown in each qualitative figure.
        dpi: Resolution of the PNG figures.
    """

    title: str = "MT-UNet: a reproducible study on Synapse and ACDC"
    max_qualitative: int = 4
    dpi: int = 110

    def __post_init__(self) -> None:
        check(self.max_qualitative >= 1, "report.max_qualitative", "must be >= 1")
        check(20 <= self.dpi <= 600, "report.dpi", "must lie in [20, 600]")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "report") -> ReportConfig:
        """Build from a params section (unknown keys / wrong types raise ValueError)."""
        return from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return to_dict(self)


def _read_curve(path: Path) -> pd.DataFrame | None:
    """A DVCLive TSV (``timestamp``?, ``step``, value) as columns ``step, value``, or None."""
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, sep="\t")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    cols = [c for c in df.columns if str(c) not in ("step", "timestamp")]
    name = path.stem if path.stem in df.columns else (cols[-1] if cols else None)
    if name is None or df.empty:
        return None
    step = df["step"] if "step" in df.columns else pd.Series(np.arange(len(df)))
    out = pd.DataFrame(
        {
            "step": pd.to_numeric(step, errors="coerce"),
            "value": pd.to_numeric(df[name], errors="coerce"),
        }
    ).dropna()
    return out if not out.empty else None


def _read_curves(live_dir: Path) -> dict[str, pd.DataFrame]:
    base = live_dir / "plots" / "metrics"
    files = {
        "loss": base / "train" / "loss.tsv",
        "epoch_loss": base / "train" / "epoch_loss.tsv",
        "lr": base / "train" / "lr.tsv",
        "val_dice": base / "val" / "dice.tsv",
    }
    return {k: df for k, p in files.items() if (df := _read_curve(p)) is not None}


def _optional_json(path: Path, notes: list[str], what: str) -> dict[str, Any] | None:
    if not path.is_file():
        notes.append(f"{what}: `{path.as_posix()}` not found.")
        return None
    try:
        value = read_json(path)
    except ValueError as exc:
        notes.append(f"{what}: {exc}")
        return None
    return value if isinstance(value, dict) else None


def _rel_link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _selection_text(sel: dict[str, Any] | None, train_info: dict[str, Any] | None) -> str:
    sel = dict(sel or {})
    if not sel and train_info:
        sel = dict(train_info.get("selection") or {})
    if not sel:
        return "not recorded"
    rule = sel.get("rule")
    words = {
        "last": "the last epoch (no test data used for selection)",
        "best_val": "the epoch with the best mean Dice on the validation split",
    }.get(str(rule), f"rule {rule!r}")
    extra = []
    if sel.get("epoch") is not None:
        extra.append(f"epoch {sel['epoch']}")
    if isinstance(sel.get("val_dice"), (int, float)):
        extra.append(f"validation Dice {fmt(sel['val_dice'], 4)}")
    return words + (f" ({', '.join(extra)})" if extra else "")


def _split_text(manifest: dict[str, Any] | None) -> str:
    if not manifest or not manifest.get("splits"):
        return "not available (the comparison records no dataset_info)"
    splits = manifest.get("splits") or {}
    parts = []
    for name in ("train", "val", "test"):
        s = splits.get(name) or {}
        cases = s.get("cases") or []
        n_slices = len(s.get("slices") or [])
        extra = f", {n_slices} slices" if n_slices and name != "test" else ""
        parts.append(f"{name} {len(cases)} cases{extra}")
    test = (splits.get("test") or {}).get("cases") or []
    shown = ", ".join(str(c) for c in test[:20]) + (" ..." if len(test) > 20 else "")
    return "; ".join(parts) + (f" (test: {shown})" if test else "")


@dataclass(frozen=True)
class _Inputs:
    """What the report reads for one dataset."""

    dataset: str
    metrics: dict[str, Any]
    comparison: dict[str, Any]
    per_case: pd.DataFrame | None
    models: list[str]
    ablations: list[str]
    reference_run: RunPaths | None

    @property
    def reference(self) -> str:
        return str(self.comparison["reference"])

    @property
    def ablation_reference(self) -> str:
        """The model the ablations were tested against (the comparison's reference unless it
        records another)."""
        return str(self.comparison.get("ablation_reference") or self.reference)


def _variant_order(comparison: dict[str, Any], per_case: pd.DataFrame | None) -> list[str]:
    """The study's order: reference, other models, ablations.

    JSON keys are sorted, so the order comes from the long per-case table (written in study
    order), then the comparison lists, then the names.
    """
    names = list(comparison["variants"])
    seen = list(dict.fromkeys(per_case["variant"].astype(str))) if per_case is not None else []
    tests = comparison.get("comparisons") or {}
    listed = [
        str(r.get("variant"))
        for group in ("models", "ablations")
        for rows in (tests.get(group) or {}).values()
        for r in rows
    ]
    order = [
        v for v in dict.fromkeys([comparison["reference"], *seen, *listed, *sorted(names)])
        if v in names
    ]  # fmt: skip
    kind = {v: comparison["variants"][v].get("kind", "model") for v in order}
    return [v for v in order if kind[v] == "model"] + [v for v in order if kind[v] != "model"]


def _load_inputs(ds: str, root: Path, notes: list[str]) -> _Inputs:
    """Read ``metrics/<ds>.json``, ``compare/<ds>/comparison.json`` and its per-case table."""
    path = root / "metrics" / f"{ds}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file for dataset {ds!r} not found")
    metrics = read_json(path)
    if not isinstance(metrics, dict) or "per_class" not in metrics:
        raise ValueError(f"{path}: not a metrics file (no 'per_class' entry)")
    cpath = root / "compare" / ds / "comparison.json"
    if not cpath.is_file():
        raise FileNotFoundError(
            f"{cpath}: comparison of dataset {ds!r} not found; run the compare stage "
            "(`dvc repro`) first"
        )
    comparison = read_json(cpath)
    if (
        not isinstance(comparison, dict)
        or not isinstance(comparison.get("variants"), dict)
        or comparison.get("reference") not in comparison["variants"]
    ):
        raise ValueError(f"{cpath}: not a comparison file (no 'variants' with the 'reference')")
    pc_path = cpath.parent / "per_case.csv"
    per_case = None
    if pc_path.is_file():
        per_case = pd.read_csv(pc_path)
        if "class_name" not in per_case.columns:
            per_case["class_name"] = per_case["class_id"].astype(str)
    else:
        notes.append(f"{ds}: per-case table `{pc_path.as_posix()}` not found (no per-case plots).")
    order = _variant_order(comparison, per_case)
    kinds = {v: comparison["variants"][v].get("kind", "model") for v in order}
    ref = str(comparison["reference"])
    seeds = list(comparison["variants"][ref].get("seeds") or [])
    if not seeds and per_case is not None:
        seeds = list(dict.fromkeys(per_case.loc[per_case["variant"] == ref, "seed"].astype(int)))
    run = RunPaths(ds, ref, int(seeds[0]), root) if seeds else None
    if run is None:
        notes.append(f"{ds}: no seed recorded for {ref}; its training run is not shown.")
    return _Inputs(
        dataset=ds,
        metrics=metrics,
        comparison=comparison,
        per_case=per_case,
        models=[v for v in order if kinds[v] == "model"],
        ablations=[v for v in order if kinds[v] != "model"],
        reference_run=run,
    )


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value of the exact Wilcoxon signed-rank test on ``n`` cases.

    Reached when all ``n`` non-zero differences have the same sign: under the null each sign
    is a fair coin, so that happens with probability ``1 / 2**n`` per side, ``2 / 2**n``
    two-sided (capped at 1).
    """
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0**n)


def cases_needed(alpha: float = ALPHA) -> int:
    """The fewest test cases with which the exact Wilcoxon test can give ``p < alpha``."""
    n = 1
    while min_wilcoxon_p(n) >= alpha:
        n += 1
    return n


def _n_paired(inp: _Inputs) -> int | None:
    for rows in ((inp.comparison.get("comparisons") or {}).get("models") or {}).values():
        for row in rows:
            if isinstance(row.get("n"), int):
                return int(row["n"])
    n = (inp.comparison["variants"][inp.reference].get("dsc") or {}).get("n_cases")
    return int(n) if isinstance(n, int) else None


def _seeds_text(n_seeds: int, level: int) -> str:
    """How many seeds there are and what that does to the t interval."""
    if n_seeds < 2:
        return f"{n_seeds} training seed here, so no seed interval; it needs two seeds or more"
    q = float(student_t.ppf(0.5 + level / 200.0, n_seeds - 1))
    return (
        f"{n_seeds} training seeds here: the interval is the mean ± {q:.2f} standard errors, "
        "wide with few seeds, and it can leave the metric's range"
    )


def _intervals_paragraph(inp: _Inputs) -> list[str]:
    """What the intervals mean, when a difference counts, and what the test can detect here."""
    comp = inp.comparison
    level = round(100 * float(comp.get("confidence") or 0.95))
    ref_dsc = comp["variants"][inp.reference].get("dsc") or {}
    n_seeds = ref_dsc.get("n_seeds") or len(comp["variants"][inp.reference].get("seeds") or [])
    n_boot = comp.get("n_bootstrap")
    boot = f"{int(n_boot):,} resamples" if isinstance(n_boot, int) else "resamples"
    text = (
        f"**Reading the intervals.** Every interval is a {level}% confidence interval. "
        "*seeds*: the Student-t interval of the mean of the per-seed means: how much a result "
        f"moves when the networks are trained again with other seeds ({_seeds_text(n_seeds, level)}"
        "). *cases*: the percentile bootstrap "
        f"({boot}) of the mean over the test cases, each case's score averaged over the seeds: "
        "how much it would move on another sample of test cases. A difference to the "
        "reference is the mean over the test cases of variant minus reference (DSC in % "
        "points, HD95 in voxels; higher DSC and lower HD95 are better) with its bootstrap "
        "interval. It counts as significant only when the two-sided Wilcoxon signed-rank "
        "test over the cases, Holm-corrected within each table and metric, gives p < "
        f'{ALPHA:g}; otherwise the tables say "not significant", whatever the size of the '
        "difference."
    )
    n = _n_paired(inp)
    if n is not None:
        p_min = min_wilcoxon_p(n)
        text += (
            f" With {n} test cases the smallest p-value the exact Wilcoxon test can give "
            f"(every case moving the same way) is 2/2^{n} = {p_min:.3g}"
        )
        if p_min >= ALPHA:
            text += (
                ", so no difference can be significant here, whatever its size (Holm's "
                f"correction can only raise p): at least {cases_needed()} test cases are needed."
            )
        else:
            text += (
                f", below {ALPHA:g}: a difference can reach significance when (nearly) every "
                "case moves the same way (before Holm's correction, which can only raise p)."
            )
    return [text, ""]


def _table_lines(
    table: Table, tab_dir: Path, stem: str, caption: str, intro: str | None = None
) -> list[str]:
    """Write a table (CSV + LaTeX) and return its Markdown with the caption and file links."""
    write_both(table, tab_dir, stem, caption)
    lines = [intro, ""] if intro else []
    return [
        *lines,
        to_markdown(table.display),
        f"_{caption}_ Table: [`tables/{stem}.csv`](tables/{stem}.csv), "
        f"[`.tex`](tables/{stem}.tex).",
        "",
    ]


def _complexity_caption(comp: dict[str, Any], models: list[str]) -> str:
    inputs = {
        "x".join(str(v) for v in cx["input"])
        for m in models
        if (cx := comp["variants"][m].get("complexity")) and cx.get("input")
    }
    if not inputs:
        return "Parameters and GFLOPs were not recorded (`-`)."
    size = inputs.pop() if len(inputs) == 1 else "the run's input size"
    return (
        f"Parameters in millions; GFLOPs of one forward pass of one image ({size}, the "
        "run's input size; torch's FLOP counter, 2 FLOPs per multiply-add)."
    )


def _interval_caption(comp: dict[str, Any]) -> str:
    level = round(100 * float(comp.get("confidence") or 0.95))
    return (
        f"Means with {level}% intervals: `seeds` = Student-t over the per-seed means (two "
        "seeds or more), `cases` = percentile bootstrap over the test cases."
    )


def _models_block(inp: _Inputs, title: str, label: str, tab_dir: Path) -> list[str]:
    comp, ds = inp.comparison, inp.dataset
    baseline = comp.get("threshold_baseline") or inp.metrics.get("threshold_baseline")
    table = models_table(comp, inp.models, baseline)
    caption = (
        f"{title}, {label}: the study's models (reference {inp.reference} first). "
        f"{_interval_caption(comp)} DSC per class: means. "
        f"{_complexity_caption(comp, inp.models)}"
        + (
            " The threshold baseline uses image intensity only, on the same data."
            if baseline
            else ""
        )
    )
    lines = ["### Models", ""]
    return lines + _table_lines(table, tab_dir, f"{ds}_models", caption)


def _difference_block(inp: _Inputs, title: str, tab_dir: Path) -> list[str]:
    others = [m for m in inp.models if m != inp.reference]
    lines = [f"### Differences to the reference ({inp.reference})", ""]
    if not others:
        return [*lines, "_The study has one model; there is nothing to compare it with._", ""]
    table = difference_table(inp.comparison, "models", others)
    if table.data.empty:
        return [*lines, "_comparison.json holds no model comparisons._", ""]
    caption = (
        f"{title}: each model minus {inp.reference}, paired on the test cases (seed-averaged); "
        "bootstrap interval of the mean difference, two-sided Wilcoxon signed-rank p, Holm "
        "correction over the models per metric."
    )
    return lines + _table_lines(table, tab_dir, f"{inp.dataset}_vs_reference", caption)


def _forest_block(inp: _Inputs, title: str, fig_dir: Path, out_dir: Path, dpi: int) -> list[str]:
    comp = inp.comparison
    tests = comp.get("comparisons") or {}
    rows = []
    for group, names in (("models", inp.models), ("ablations", inp.ablations)):
        for name in names:
            row: dict[str, Any] = {
                "label": variant_label(name, comp["variants"][name])
                + (f" vs {inp.ablation_reference}"
                   if group == "ablations" and inp.ablation_reference != inp.reference else ""),
                "group": "model" if group == "models" else "ablation",
            }  # fmt: skip
            found = False
            for metric in ("dsc", "hd95"):
                test = next(
                    (
                        r
                        for r in (tests.get(group) or {}).get(metric) or []
                        if r.get("variant") == name
                    ),
                    None,
                )
                if test is None:
                    continue
                found = True
                row.update({f"{metric}_{k}": test.get(k) for k in ("diff", "ci_low", "ci_high")})
                row[f"{metric}_significant"] = verdict(test, True) != "not significant"
            if found:
                rows.append(row)
    if not rows:
        return []
    data = pd.DataFrame(rows)
    xlabels = {
        "dsc": "ΔDSC (% points), variant − reference",
        "hd95": "ΔHD95 (voxels), variant − reference",
    }
    metrics = [(m, xlabels[m]) for m in ("dsc", "hd95") if f"{m}_diff" in data.columns]
    level = round(100 * float(comp.get("confidence") or 0.95))
    png = plots.forest_plot(
        data,
        metrics,
        f"{title}: difference to {inp.reference} ({level}% CI over test cases)",
        fig_dir / f"{inp.dataset}_forest.png",
        dpi,
    )
    return [
        f"![Differences to the reference, {inp.dataset}]({_rel_link(png, out_dir)})",
        "",
        f"_Forest plot: mean difference to {inp.reference} over the test cases with its "
        f"{level}% bootstrap interval, for every model and ablation; dashed line: no "
        "difference; filled dot: significant after Holm's correction (higher DSC and lower "
        "HD95 are better)._",
        "",
    ]


def case_dice(per_case: pd.DataFrame) -> pd.DataFrame:
    """Per variant and case: the case's mean foreground Dice (%), averaged over the seeds.

    The comparison's case score (the mean over the case's foreground classes, NaN entries
    left out), so the mean over cases is the comparison's mean DSC.

    Returns:
        Columns ``variant, case, dsc``, in the table's order.
    """
    df = per_case[per_case["class_id"] > 0] if "class_id" in per_case.columns else per_case
    dice = pd.to_numeric(df["dice"], errors="coerce")
    per_seed = dice.groupby([df["variant"], df["seed"], df["case"]], sort=False).mean()
    per_case_mean = per_seed.groupby(level=["variant", "case"], sort=False).mean() * 100.0
    return per_case_mean.rename("dsc").reset_index()


def _per_case_block(
    inp: _Inputs, title: str, label: str, fig_dir: Path, out_dir: Path, dpi: int
) -> list[str]:
    if inp.per_case is None:
        return []
    scores = case_dice(inp.per_case)
    order = [v for v in [*inp.models, *inp.ablations] if v in set(scores["variant"])]
    data_path = fig_dir / f"{inp.dataset}_dice_per_case.csv"
    data_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(data_path) as tmp:
        scores.to_csv(tmp, index=False, lineterminator="\n")
    png = plots.per_case_variant_plot(
        scores,
        order,
        f"{title}: Dice per test case ({label})",
        fig_dir / f"{inp.dataset}_dice_per_case.png",
        dpi,
    )
    return [
        f"![Dice per case, {inp.dataset}]({_rel_link(png, out_dir)})",
        "",
        "_Each dot: one test case's mean foreground Dice, averaged over the seeds; one colour "
        f"per model or ablation. Data: [`figures/{data_path.name}`](figures/{data_path.name})._",
        "",
    ]


def _ablation_block(inp: _Inputs, title: str, tab_dir: Path) -> list[str]:
    if not inp.ablations:
        return []
    full = inp.ablation_reference
    lines = ["### Ablations", ""]
    if full not in inp.comparison["variants"]:
        return [*lines, f"_The ablations' reference {full} has no results._", ""]
    table = ablation_table(inp.comparison, full, inp.ablations)
    caption = (
        f"{title}: ablations of {full} (each changes the model section as shown). "
        f"{_interval_caption(inp.comparison)} Δ = ablation minus {full}, paired on the test "
        "cases, with its bootstrap interval; Holm correction over the ablations per metric."
    )
    lines += _table_lines(table, tab_dir, f"{inp.dataset}_ablations", caption)
    if full != "mtunet" and "mtunet" in inp.comparison["variants"]:
        lines += [
            f"_The comparison tested the ablations against {full}, the study's reference, not "
            "against the full MT-UNet (mtunet)._",
            "",
        ]
    return lines


def _nsd_label(comp: dict[str, Any], metrics: dict[str, Any]) -> str:
    """``τ = 2 mm``: the surface Dice tolerance the comparison recorded, with its unit."""
    tol = comp.get("nsd_tolerance")
    unit = None
    if isinstance(tol, dict):
        unit = tol.get("unit")
        tol = tol.get("value", tol.get("tolerance"))
    if isinstance(tol, bool) or not isinstance(tol, (int, float)):
        return "tolerance not recorded"
    if unit is None:
        unit = "mm" if isinstance(metrics.get("hd95_mm"), (int, float)) else "voxels"
    return f"τ = {tol:g} {unit}"


def _surface_block(inp: _Inputs, title: str, tab_dir: Path, notes: list[str]) -> list[str]:
    nsd = _nsd_label(inp.comparison, inp.metrics)
    table = surface_table(inp.comparison, [*inp.models, *inp.ablations], nsd)
    if table is None:
        notes.append(
            f"{inp.dataset}: the comparison has no `hd95_monai` / `nsd` (per-case tables from "
            "an older evaluation); no surface-metric conventions table."
        )
        return []
    caption = (
        f"{title}: one segmentation, three surface metrics. HD95 medpy: the 95th percentile "
        "of both directed surface distances pooled, in voxels (the published convention); "
        "HD95 MONAI: the larger of the two directed 95th percentiles (never smaller than "
        f"medpy's); NSD: normalised surface Dice, the share of surface voxels within the "
        f"tolerance ({nsd}). {_interval_caption(inp.comparison)}"
    )
    lines = ["### Surface-distance conventions", ""]
    return lines + _table_lines(table, tab_dir, f"{inp.dataset}_surface_metrics", caption)


def _published_block(inp: _Inputs, title: str, label: str, tab_dir: Path) -> list[str]:
    table = published_table(inp.dataset)
    if table is None:
        return []
    synthetic = inp.metrics.get("data_source") == "synthetic"
    caption = (
        f"Published numbers on the real {title} data (MT-UNet paper, ICASSP 2022): DSC (%), "
        "HD95 (voxels), DSC per class. "
        + (
            "Not comparable with this study's runs, which are on synthetic phantoms."
            if synthetic
            else f"Other training runs than this study's ({label}); compare with care."
        )
    )
    lines = ["### Published numbers on the real data (not this study's runs)", ""]
    lines += _table_lines(table, tab_dir, f"{inp.dataset}_published", caption)
    if inp.dataset in PUBLISHED_NOTES:
        lines += [f"_{PUBLISHED_NOTES[inp.dataset]}_", ""]
    return lines


def _class_names_by_id(inp: _Inputs) -> list[str]:
    """Class names indexed by class id: from the dataset info, the per-case table's ids, or
    the comparison's foreground names."""
    info = inp.comparison.get("dataset_info") or {}
    if isinstance(info.get("class_names"), list) and info["class_names"]:
        return [str(c) for c in info["class_names"]]
    df = inp.per_case
    if df is not None and {"class_id", "class_name"} <= set(df.columns) and len(df):
        ids = dict(zip(df["class_id"].astype(int), df["class_name"].astype(str), strict=True))
        return [ids.get(i, str(i)) if i else "background" for i in range(max(ids) + 1)]
    return ["background", *[str(c) for c in inp.comparison.get("class_names") or []]]


def _reference_run_block(
    inp: _Inputs,
    title: str,
    label: str,
    cfg: ReportConfig,
    out_dir: Path,
    notes: list[str],
) -> list[str]:
    """The reference model per class, and its first seed's training curves and slices."""
    ds, ref = inp.dataset, inp.reference
    fig_dir, tab_dir = out_dir / "figures", out_dir / "tables"
    lines = [f"### Reference model ({ref}) in detail", ""]
    pc = per_class_table(ds, inp.metrics)
    caption = f"{title}: {ref} per class, means over the seeds ({label})"
    lines.append(f"{ref} per class (DSC %, HD95 in voxels and in mm; means over the seeds):")
    lines.append("")
    lines.append(to_markdown(pc, ["Class", "DSC (%)", "HD95 (vox)", "HD95 (mm)"]))
    write_table(pc, tab_dir, f"{ds}_per_class", caption)
    lines += [
        f"Table: [`tables/{ds}_per_class.csv`](tables/{ds}_per_class.csv), "
        f"[`.tex`](tables/{ds}_per_class.tex).",
        "",
    ]
    if inp.per_case is not None:
        sub = inp.per_case[(inp.per_case["variant"] == ref) & (inp.per_case["class_id"] > 0)]
        if len(sub):
            per_class = (
                sub.assign(dice=pd.to_numeric(sub["dice"], errors="coerce"))
                .groupby(["case", "class_id", "class_name"], sort=False)["dice"]
                .mean()
                .reset_index()
            )
            png = plots.dice_per_class_plot(
                per_class,
                f"{title}: {ref}, Dice per class ({label})",
                fig_dir / f"{ds}_dice_per_class.png",
                cfg.dpi,
            )
            lines += [f"![Dice per class, {ds}]({_rel_link(png, out_dir)})", ""]
    run = inp.reference_run
    if run is None:
        return lines
    seed_text = f"{ref}, seed {run.seed}"
    curves = _read_curves(run.live_dir)
    if curves:
        png = plots.training_curves_plot(
            curves, f"{title}: training ({seed_text})", fig_dir / f"{ds}_training.png", cfg.dpi
        )
        lines += [f"![Training curves, {ds}]({_rel_link(png, out_dir)})", ""]
        if "val_dice" not in curves:
            lines += ["_No validation Dice curve: the dataset has no validation split._", ""]
    else:
        notes.append(f"{ds}: no DVCLive training logs under `{run.live_dir.as_posix()}`.")
    qual_path = run.eval_dir / "qualitative.npz"
    if qual_path.is_file():
        with np.load(qual_path, allow_pickle=False) as z:
            qual = {k: z[k] for k in z.files}
        if len(qual.get("image", [])):
            png = plots.qualitative_plot(
                qual,
                _class_names_by_id(inp),
                f"{title}, {seed_text}: ground truth (solid) and prediction (dashed)",
                fig_dir / f"{ds}_qualitative.png",
                cfg.dpi,
                cfg.max_qualitative,
            )
            lines += [f"![Qualitative results, {ds}]({_rel_link(png, out_dir)})", ""]
        else:
            notes.append(f"{ds}: `{qual_path.as_posix()}` holds no slices.")
    else:
        notes.append(f"{ds}: qualitative slices `{qual_path.as_posix()}` not found.")
    return lines


def _study_text(inp: _Inputs) -> str:
    comp = inp.comparison
    seeds = comp["variants"][inp.reference].get("seeds") or []
    models = ", ".join(f"{m} (reference)" if m == inp.reference else m for m in inp.models)
    abl = "; ".join(variant_label(a, comp["variants"][a]) for a in inp.ablations) or "none"
    return (
        f"models {models}; ablations {abl}; seeds {', '.join(str(s) for s in seeds) or '?'} "
        "(every model and ablation trained once per seed)"
    )


def _protocol(inp: _Inputs, title: str, label: str, notes: list[str]) -> list[str]:
    metrics, run = inp.metrics, inp.reference_run
    train_info = None
    if run is not None and run.train_info.is_file():
        train_info = _optional_json(run.train_info, notes, f"{inp.dataset} train.json")
    counts = metrics.get("empty_mask_cases") or {}
    policy = metrics.get("empty_policy", "published")
    conv = (
        "published: prediction non-empty with empty ground truth counts as (DSC 1, HD95 0), "
        "an empty prediction as (0, 0)"
        if policy == "published"
        else "`nan`: HD95 undefined (NaN) when a mask is empty, DSC 0 when exactly one mask is "
        "empty, NaN when both are; NaN entries are left out of the means"
    )
    mm = metrics.get("hd95_mm")
    which = f"{inp.reference}, seed {run.seed}" if run is not None else inp.reference
    return [
        f"### {title}",
        "",
        f"- Data: {label}; {metrics.get('n_cases', '?')} test cases evaluated.",
        f"- Study: {_study_text(inp)}.",
        f"- Split: {_split_text(inp.comparison.get('dataset_info'))}.",
        f"- Model selection ({which}): "
        f"{_selection_text(metrics.get('model_selection'), train_info)}.",
        f"- Training ({which}): {_training_text(train_info)}.",
        f"- Computed on: {_machine_text(train_info)}.",
        f"- Empty-mask convention: {conv}. (case, class) pairs affected ({which}): "
        f"ground truth empty {counts.get('gt_empty', 0)}, prediction empty "
        f"{counts.get('pred_empty', 0)}, both empty {counts.get('both_empty', 0)}.",
        "- HD95: medpy's definition (6-connected surfaces, 95th percentile of both directions "
        "pooled), in voxels as the published tables"
        + (
            f"; also in mm with each volume's spacing (mean {fmt(mm)} mm)."
            if isinstance(mm, (int, float))
            else "; no mm values (volumes without spacing)."
        ),
        f"- Surface Dice tolerance: {_nsd_label(inp.comparison, metrics)}.",
        "",
    ]


def _dataset_section(
    inp: _Inputs, out_dir: Path, cfg: ReportConfig, notes: list[str]
) -> tuple[list[str], list[str]]:
    """Markdown lines of one dataset's results and its protocol lines."""
    ds = inp.dataset
    fig_dir, tab_dir = out_dir / "figures", out_dir / "tables"
    title = TITLES.get(ds, ds)
    source = inp.metrics.get("data_source")
    label = data_label(source)
    lines = [f"## {title} (`{ds}`)", ""]
    lines.append(
        f"**Data used by this study: {label}**"
        + (
            " (generated phantoms; numbers are NOT comparable with the published numbers, "
            "which are on real data)."
            if source == "synthetic"
            else "."
        )
    )
    lines.append("")
    lines += _models_block(inp, title, label, tab_dir)
    lines += _intervals_paragraph(inp)
    lines += _difference_block(inp, title, tab_dir)
    lines += _forest_block(inp, title, fig_dir, out_dir, cfg.dpi)
    lines += _per_case_block(inp, title, label, fig_dir, out_dir, cfg.dpi)
    lines += _ablation_block(inp, title, tab_dir)
    lines += _surface_block(inp, title, tab_dir, notes)
    lines += _reference_run_block(inp, title, label, cfg, out_dir, notes)
    lines += _published_block(inp, title, label, tab_dir)
    return lines, _protocol(inp, title, label, notes)


def _experiments_section(
    repo_dir: Path,
    datasets: list[str],
    metrics_dir: Path,
    params_path: Path,
    out_dir: Path,
    notes: list[str],
) -> list[str]:
    exps = collect_experiments(repo_dir, datasets, metrics_dir, params_path, notes)
    rows = comparison_rows(exps, datasets)
    df = pd.DataFrame(rows)
    cols = ["experiment", "rev", "changed_params"]
    headers = ["Experiment", "Rev", "Changed params (vs baseline)"]
    for ds in datasets:
        cols += [f"{ds}_dsc", f"{ds}_dsc_delta", f"{ds}_hd95", f"{ds}_hd95_delta"]
        headers += [f"{ds} DSC", "Δ DSC", f"{ds} HD95", "Δ HD95"]
    df = df.reindex(columns=cols)
    df["changed_params"] = df["changed_params"].replace("", "(none)")
    deltas = [c for c in cols if c.endswith("_delta")]
    write_table(
        df,
        out_dir / "tables",
        "experiments",
        "Experiments: DSC (%) and HD95 (voxels), delta to baseline",
        signed_cols=deltas,
    )
    n_exp = sum(e.kind == "experiment" for e in exps)
    return [
        "## Experiments",
        "",
        f"Baseline = metrics and params committed at `HEAD`; {n_exp} `dvc exp` run(s) found "
        "under `refs/exps/`; the workspace is the run this report was built from. "
        "Δ = value minus baseline (DSC in % points, HD95 in voxels; lower HD95 is better).",
        "",
        to_markdown(df, headers, signed_cols=deltas),
        "Table: [`tables/experiments.csv`](tables/experiments.csv), "
        "[`.tex`](tables/experiments.tex).",
        "",
    ]


def _machine_text(train_info: dict[str, Any] | None) -> str:
    """Where training ran, with which CPU kernels, and what that makes reproducible."""
    if not train_info or not train_info.get("machine"):
        return "not recorded"
    m = train_info["machine"]
    device = train_info.get("device", "?")
    kernels = (train_info.get("train_config") or {}).get("cpu_kernels", "native")
    text = f"{device}; {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}"
    if not str(device).startswith("cpu"):
        return text + "; GPU results repeat bit for bit only on the same GPU and software"
    if kernels == "portable" and str(m.get("aten_capability", "")).upper() == "AVX2":
        return text + (
            "; portable AVX2 kernels: the same params give the same weights, bit for bit, on "
            "this machine and on an AVX2-only CPU simulated on it (same torch and thread "
            "count; benchmarks/cpu_reproducibility.py), while native kernels moved the Synapse "
            "mean DSC by points (README, Reproducibility across machines)"
        )
    return text + (
        f"; native {m.get('aten_capability')} kernels: bit for bit on the same CPU and "
        "software only; other CPUs round differently and move the metrics"
    )


def _training_text(train_info: dict[str, Any] | None) -> str:
    """This run's optimizer, schedule and network, and where they differ from the paper's."""
    if not train_info:
        return "not recorded (no train.json)"
    tc = train_info.get("train_config") or {}
    mc = train_info.get("model_config") or {}
    run = {
        k: tc.get(k)
        for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs", "poly_power")
    }
    run.update(
        {
            k: mc.get(k)
            for k in (
                "img_size",
                "width_mult",
                "win_size",
                "gaussian",
                "external_attention",
                "attention",
            )
        }
    )
    text = (
        f"{run['optimizer']} lr {run['lr']}, weight decay {run['weight_decay']}, batch "
        f"{run['batch_size']}, {run['epochs']} epochs, poly decay {run['poly_power']}, loss "
        f"0.5 CE + 0.5 soft Dice; input {'x'.join(map(str, run['img_size'] or []))}, "
        f"width_mult {run['width_mult']}"
    )
    differs = [f"{k} {run[k]} (paper: {v})" for k, v in PAPER_SETUP.items() if run.get(k) != v]
    return text + (
        "; differs from the published setup in " + ", ".join(differs)
        if differs
        else "; the published setup"
    )


def build_report(
    datasets: list[str],
    root: str | os.PathLike[str],
    params_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    repo_dir: str | os.PathLike[str] = ".",
) -> Path:
    """Write ``out_dir/report.md`` with ``figures/*.png`` and ``tables/*.{csv,tex}``.

    Per dataset it reads, under the study root ``root``: ``metrics/<ds>.json`` and
    ``compare/<ds>/comparison.json`` (both required), ``compare/<ds>/per_case.csv``, and the
    reference model's first-seed run (:class:`mtunet.study.RunPaths`): ``train.json``, the
    DVCLive curves and ``qualitative.npz`` (all optional; a missing one adds a note).

    Args:
        datasets: Dataset names (``"synapse"``, ``"acdc"``) in report order.
        root: The study root (``metrics/``, ``compare/``, ``models/``, ``dvclive/``,
            ``eval/``).
        params_path: ``params.yaml``; its ``report`` section configures the report.
        out_dir: Output folder (``reports``).
        repo_dir: Git repository root, for the experiment comparison (read with ``git``
            only; never ``dvc``, whose lock the running stage holds).

    Returns:
        Path of ``report.md``.

    Raises:
        ValueError: No datasets, or an invalid ``report`` params section, metrics file or
            comparison file.
        FileNotFoundError: A dataset's metrics file or comparison is missing.
    """
    if not datasets:
        raise ValueError("datasets: at least one dataset is needed for the report")
    root, repo = Path(root), Path(repo_dir)
    params_path, out_dir = Path(params_path), Path(out_dir)

    notes: list[str] = []
    params: dict[str, Any] = {}
    if params_path.is_file():
        params = load_params(params_path)
    else:
        notes.append(f"params file `{params_path.as_posix()}` not found; report defaults used.")
    cfg = ReportConfig.from_dict(params.get("report"), "report")

    inputs = {ds: _load_inputs(ds, root, notes) for ds in datasets}

    body: list[str] = []
    protocol: list[str] = []
    for ds in datasets:
        lines, prot = _dataset_section(inputs[ds], out_dir, cfg, notes)
        body += lines
        protocol += prot

    summary = "; ".join(
        f"{TITLES.get(ds, ds)}: {inp.reference} mean DSC "
        f"{interval_text(inp.comparison['variants'][inp.reference].get('dsc'))} %, HD95 "
        f"{interval_text(inp.comparison['variants'][inp.reference].get('hd95'))} voxels on "
        f"{data_label(inp.metrics.get('data_source'))}"
        for ds, inp in inputs.items()
    )
    md = [f"# {cfg.title}", "", f"Summary: {summary}.", ""]
    if any(inp.metrics.get("data_source") == "synthetic" for inp in inputs.values()):
        md += [
            "> This study used **synthetic phantoms**, not the real scans: its numbers check "
            "the pipeline end to end and are not comparable with the published numbers "
            "(their own tables, on real data).",
            "",
        ]
    md += body
    md += _experiments_section(repo, datasets, root / "metrics", params_path, out_dir, notes)
    md += ["## Protocol", "", *protocol]
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    text = "\n".join(md).rstrip() + "\n"
    report = out_dir / "report.md"
    write_text(report, text)
    return report


__all__ = ["ReportConfig", "build_report", "case_dice", "cases_needed", "min_wilcoxon_p"]
