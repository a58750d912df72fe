"""The report's tables: the study's models, their differences to the reference, the
ablations, the surface-distance conventions, the published numbers, per class, experiments.

Every table is built twice (:class:`Table`): ``data`` holds the numbers at full precision
(the CSV file), ``display`` the formatted cells a reader sees (Markdown and LaTeX), e.g.
``"91.30 [90.10, 92.40] seeds; [88.00, 94.10] cases"``. The builders read the data model
(:class:`mtunet.report.model.Results`), so a change there shows in every table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mtunet.report.formatting import METRIC_LABELS, baseline_label, fmt, fmt_p
from mtunet.report.published import ACDC_ORDER, PUBLISHED, SYNAPSE_ORDER
from mtunet.report.results import FAMILIES, Difference, Estimate, Results
from mtunet.report.spread import RerunSpread

CLASS_ORDER = {"synapse": SYNAPSE_ORDER, "acdc": ACDC_ORDER}


@dataclass(frozen=True)
class Table:
    """One table: full-precision ``data`` (CSV) and formatted ``display`` cells (Markdown, TeX).

    Attributes:
        data: Numbers and labels at full precision, machine-readable column names.
        display: The same rows as strings, with the column headers a reader sees.
    """

    data: pd.DataFrame
    display: pd.DataFrame


def class_order(metrics: Mapping[str, Any], dataset: str) -> list[str]:
    """This run's class names (background excluded), in the published column order.

    The metrics JSON has sorted keys, so the class-id order is lost there; known names follow
    the published tables' order, unknown ones come after in the file's order.
    """
    names = list((metrics.get("per_class") or {}).keys())
    known = [c for c in CLASS_ORDER.get(dataset, ()) if c in names]
    return known + [c for c in names if c not in known]


def _stats_columns(prefix: str, est: Estimate) -> dict[str, Any]:
    """The mean, both intervals' bounds and the case interval's method and simulated
    coverage as CSV columns ``<prefix>_seed_low`` ..."""
    cases = est.cases
    return {
        prefix: est.mean,
        f"{prefix}_seed_low": est.seeds.low if est.seeds else None,
        f"{prefix}_seed_high": est.seeds.high if est.seeds else None,
        f"{prefix}_case_low": cases.low if cases else None,
        f"{prefix}_case_high": cases.high if cases else None,
        f"{prefix}_case_method": cases.method if cases else None,
        **{f"{prefix}_case_coverage_{f}": (cases.coverage.get(f) if cases else None)
           for f in FAMILIES},
    }  # fmt: skip


def models_table(res: Results, baseline: Mapping[str, Any] | None = None) -> Table:
    """One row per model (reference first): size, mean DSC and HD95 with intervals, DSC per class.

    Args:
        res: The comparison.
        baseline: The intensity-only threshold baseline (``dsc``, ``per_class``), appended
            as a last row when given: the bar a model has to clear on the same data.
    """
    classes = list(res.classes)
    data, shown = [], []
    for name in res.models:
        v = res.variants[name]
        data.append(
            {
                "model": name,
                "reference": name == res.reference,
                "params_m": v.params_m,
                "gflops": v.gflops,
                "input": v.input,
                **_stats_columns("dsc", v.dsc),
                **_stats_columns("hd95", v.hd95),
                "n_seeds": v.dsc.n_seeds,
                "n_cases": v.dsc.n_cases,
                **{f"dsc_{c}": v.per_class_dsc[c] for c in classes},
            }
        )
        shown.append(
            {
                "Model": f"{name} (reference)" if name == res.reference else name,
                "Params (M)": fmt(v.params_m),
                "GFLOPs": fmt(v.gflops),
                "DSC (%)": v.dsc.text,
                "HD95 (vox)": v.hd95.text,
                **{c: fmt(v.per_class_dsc[c]) for c in classes},
            }
        )
    if baseline:
        pc = baseline.get("per_class") or {}
        data.append(
            {
                "model": baseline_label(baseline),
                "reference": False,
                "dsc": baseline.get("dsc"),
                **{f"dsc_{c}": pc.get(c) for c in classes},
            }
        )
        shown.append(
            {
                "Model": baseline_label(baseline),
                "DSC (%)": fmt(baseline.get("dsc")),
                **{c: fmt(pc.get(c)) for c in classes},
            }
        )
    data_df = pd.DataFrame(data, columns=list(data[0]) if data else None)
    shown_df = pd.DataFrame(shown, columns=list(shown[0]) if shown else None).fillna("-")
    return Table(data_df, shown_df)


def difference_table(res: Results, group: str, variants: Sequence[str]) -> Table:
    """Each variant of ``group`` (``models`` / ``ablations``) minus the reference, per metric.

    One row per variant and tested metric: the mean paired difference with its interval at
    the family's Bonferroni-adjusted level, how that interval was made (method, cases, its
    simulated coverage), the interval's own p-value, the adjusted p-value and the verdict
    (significant exactly when the interval excludes 0).
    """
    data, shown = [], []
    diffs = [d for name in variants for m in res.tested_metrics(group)
             if (d := res.difference(group, name, m)) is not None]  # fmt: skip
    level = _level_text(diffs, res)
    m = diffs[0].m if diffs else None
    for d in diffs:
        iv = d.interval
        data.append(
            {
                "variant": d.variant,
                "metric": d.metric,
                "diff": d.diff,
                "ci_low": iv.low,
                "ci_high": iv.high,
                "confidence": iv.level,
                "method": iv.method,
                "n_cases": d.n_cases,
                **{f"coverage_{f}": iv.coverage.get(f) for f in FAMILIES},
                "below_target": iv.below_target,
                "p_value": d.p_value,
                "p_adjusted": d.p_adjusted,
                "m": d.m,
                "significant": d.significant,
                "verdict": d.verdict,
            }
        )
        shown.append(
            {
                "Model": res.variants[d.variant].label if d.variant in res.variants else d.variant,
                "Metric": METRIC_LABELS.get(d.metric, (d.metric, True))[0],
                f"Difference [{level}]": d.text,
                "Interval": iv.how or iv.over,
                "p": fmt_p(d.p_value),
                f"Bonferroni p (m = {m})": fmt_p(d.p_adjusted),
                "Verdict": d.verdict,
            }
        )
    cols = ["variant", "metric", "diff", "ci_low", "ci_high", "confidence", "method", "n_cases",
            *(f"coverage_{f}" for f in FAMILIES), "below_target", "p_value", "p_adjusted", "m",
            "significant", "verdict"]  # fmt: skip
    heads = ["Model", "Metric", f"Difference [{level}]", "Interval", "p",
             f"Bonferroni p (m = {m})", "Verdict"]  # fmt: skip
    return Table(pd.DataFrame(data, columns=cols), pd.DataFrame(shown, columns=heads))


def _level_text(diffs: Sequence[Difference], res: Results) -> str:
    """``97.5% CI``: the level the differences' intervals are drawn at (one per family)."""
    levels = sorted({round(100 * d.interval.level, 3) for d in diffs})
    if not levels:
        return f"{res.level}% CI"
    return "/".join(f"{v:g}%" for v in levels) + " CI"


def ablation_table(res: Results) -> Table:
    """The paper's ablation table: the full model, then each ablation and its change.

    DSC and HD95 with their intervals, the paired differences to the ablations' reference
    (the model the comparison tested them against) with their intervals at the family's
    Bonferroni-adjusted level and how they were made, the adjusted p-values and the verdict
    per metric.
    """
    diffs = [d for d in res.differences if d.group == "ablations"]
    level = _level_text(diffs, res)
    full = res.ablation_reference
    # The ablations vary MT-UNet; a comparison made against another model says so.
    full_words = "full model" if full == "mtunet" else "the ablations' reference"
    data, shown = [], []
    for name in [full, *res.ablations]:
        v = res.variants[name]
        change = v.change if name != full else ""
        row: dict[str, Any] = {
            "variant": name,
            "change": change or None,
            **_stats_columns("dsc", v.dsc),
            **_stats_columns("hd95", v.hd95),
        }
        cells: dict[str, str] = {
            "Variant": name if name != full else f"{name} ({full_words})",
            "Change": change or "(none)",
            "DSC (%)": v.dsc.text,
            "HD95 (vox)": v.hd95.text,
        }
        words, adjusted = [], []
        for metric in ("dsc", "hd95"):
            d = res.difference("ablations", name, metric) if name != full else None
            short = METRIC_LABELS[metric][0].split(" ")[0]
            row.update(
                {
                    f"{metric}_diff": d.diff if d else None,
                    f"{metric}_ci_low": d.interval.low if d else None,
                    f"{metric}_ci_high": d.interval.high if d else None,
                    f"{metric}_confidence": d.interval.level if d else None,
                    f"{metric}_method": d.interval.method if d else None,
                    f"{metric}_p_value": d.p_value if d else None,
                    f"{metric}_p_adjusted": d.p_adjusted if d else None,
                    f"{metric}_verdict": d.verdict if d else None,
                }
            )
            how = f" ({d.interval.how})" if d and d.interval.how else ""
            cells[f"Δ{short} [{level}]"] = d.text + how if d else "-"
            if d:
                words.append(f"{short}: {d.verdict}")
                adjusted.append(fmt_p(d.p_adjusted))
        cells["Bonferroni p (DSC / HD95)"] = " / ".join(adjusted) if adjusted else "-"
        cells["Verdict"] = "; ".join(words) if words else "-"
        data.append(row)
        shown.append(cells)
    return Table(pd.DataFrame(data), pd.DataFrame(shown))


def spread_table(res: Results, spread: RerunSpread) -> Table:
    """Per variant: the committed mean DSC and HD95, and how far each rerun on a simulated
    other machine moved them (:mod:`mtunet.report.spread`)."""
    data, shown = [], []
    for name in [*res.models, *res.ablations]:
        v = res.variants[name]
        row: dict[str, Any] = {"variant": name}
        cells: dict[str, str] = {"Model": v.label}
        for metric in ("dsc", "hd95"):
            moves = (spread.moves.get(name) or {}).get(metric) or {}
            short = METRIC_LABELS[metric][0]
            row[metric] = v.estimate(metric).mean
            cells[short] = fmt(v.estimate(metric).mean)
            for rerun in spread.reruns:
                row[f"{metric}_move_{rerun.replace(' ', '_')}"] = moves.get(rerun)
            largest = (spread.largest.get(name) or {}).get(metric)
            row[f"{metric}_largest_move"] = largest
            cells[f"{short.split(' ')[0]} moved by"] = (
                ", ".join(
                    f"{fmt(moves[r], signed=True)} ({r})" for r in spread.reruns if r in moves
                )
                or "-"
            )
        held = [
            all(by_rerun.values())
            for key, by_rerun in spread.verdicts.items()
            if key.endswith(f"/{name}")
        ]
        row["verdicts_held"] = all(held) if held else None
        cells["Verdicts vs reference"] = ("all held" if all(held) else "changed") if held else "-"
        data.append(row)
        shown.append(cells)
    return Table(pd.DataFrame(data), pd.DataFrame(shown))


def surface_table(res: Results, nsd_label: str) -> Table | None:
    """Per variant: HD95 as medpy (published), HD95 as MONAI, normalised surface Dice.

    Returns None when the comparison has neither ``hd95_monai`` nor ``nsd`` (per-case tables
    from before these metrics were computed).
    """
    variants = [res.variants[n] for n in [*res.models, *res.ablations]]
    metrics = [m for m in ("hd95", "hd95_monai", "nsd") if any(m in v.estimates for v in variants)]
    if not {"hd95_monai", "nsd"} & set(metrics):
        return None
    heads = {
        "hd95": "HD95 medpy (vox)",
        "hd95_monai": "HD95 MONAI (vox)",
        "nsd": f"NSD (%), {nsd_label}",
    }
    data, shown = [], []
    for v in variants:
        row: dict[str, Any] = {"variant": v.name, "kind": v.kind}
        cells = {"Model": v.label}
        for m in metrics:
            row.update(_stats_columns(m, v.estimate(m)))
            cells[heads[m]] = v.estimate(m).text
        data.append(row)
        shown.append(cells)
    return Table(pd.DataFrame(data), pd.DataFrame(shown))


def published_table(dataset: str, classes: Sequence[str] | None = None) -> Table | None:
    """The MT-UNet paper's numbers on the real dataset (None for a dataset it has none of).

    Columns: ``method, dsc, hd95, dsc_<class>...`` (DSC in %, HD95 in voxels).
    """
    rows = PUBLISHED.get(dataset)
    if not rows:
        return None
    names = list(classes) if classes else list(CLASS_ORDER.get(dataset, ()))
    names = [c for c in names if c in rows[0]["per_class"]] or list(rows[0]["per_class"])
    data = pd.DataFrame(
        [
            {
                "method": r["method"],
                "dsc": r["dsc"],
                "hd95": r["hd95"],
                **{f"dsc_{c}": r["per_class"].get(c) for c in names},
            }
            for r in rows
        ]
    )
    shown = pd.DataFrame(
        [
            {
                "Method": r["method"],
                "DSC (%)": fmt(r["dsc"]),
                "HD95 (vox)": fmt(r["hd95"]),
                **{c: fmt(r["per_class"].get(c)) for c in names},
            }
            for r in rows
        ]
    )
    return Table(data, shown)


def per_class_table(dataset: str, metrics: Mapping[str, Any]) -> pd.DataFrame:
    """This run per class: DSC %, HD95 in voxels and in mm (``-`` without spacing)."""
    per_class = metrics.get("per_class") or {}
    rows = []
    for name in class_order(metrics, dataset):
        v = per_class[name] or {}
        rows.append(
            {"class": name, "dsc": v.get("dsc"), "hd95": v.get("hd95"), "hd95_mm": v.get("hd95_mm")}
        )
    rows.append(
        {
            "class": "mean",
            "dsc": metrics.get("dsc"),
            "hd95": metrics.get("hd95"),
            "hd95_mm": metrics.get("hd95_mm"),
        }
    )
    return pd.DataFrame(rows, columns=["class", "dsc", "hd95", "hd95_mm"])


def experiments_table(
    rows: Sequence[Mapping[str, Any]], datasets: Sequence[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The experiment comparison (:func:`mtunet.report.experiments.comparison_rows`).

    Returns:
        The table (``experiment, rev, changed_params`` and per dataset DSC, HD95 and their
        deltas to the baseline), the reader's headers, and the delta columns (signed).
    """
    cols = ["experiment", "rev", "changed_params"]
    headers = ["Experiment", "Rev", "Changed params (vs baseline)"]
    for ds in datasets:
        cols += [f"{ds}_dsc", f"{ds}_dsc_delta", f"{ds}_hd95", f"{ds}_hd95_delta"]
        headers += [f"{ds} DSC", "Δ DSC", f"{ds} HD95", "Δ HD95"]
    df = pd.DataFrame(list(rows)).reindex(columns=cols)
    df["changed_params"] = df["changed_params"].replace("", "(none)")
    return df, headers, [c for c in cols if c.endswith("_delta")]
