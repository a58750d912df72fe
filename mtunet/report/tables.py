"""Report tables as Markdown, CSV and LaTeX: the study's models, their differences to the
reference, the ablations, the surface-distance conventions and the published numbers.

Every table is built twice (:class:`Table`): ``data`` holds the numbers at full precision
(the CSV file), ``display`` the formatted cells a reader sees (Markdown and LaTeX), e.g.
``"91.30 [90.10, 92.40] seeds; [88.00, 94.10] cases"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mtunet.fileio import atomic_path, write_text
from mtunet.report.published import ACDC_ORDER, PUBLISHED, SYNAPSE_ORDER
from mtunet.report.stats import significance

CLASS_ORDER = {"synapse": SYNAPSE_ORDER, "acdc": ACDC_ORDER}
DATA_LABELS = {
    "synthetic": "synthetic phantoms",
    "raw": "real data (raw release)",
    "release": "real data (preprocessed release)",
}
# Metric key of comparison.json -> (column label, higher is better).
METRIC_LABELS: dict[str, tuple[str, bool]] = {
    "dsc": ("DSC (%)", True),
    "hd95": ("HD95 (vox)", False),
    "hd95_monai": ("HD95 MONAI (vox)", False),
    "nsd": ("NSD (%)", True),
}
ALPHA = 0.05


@dataclass(frozen=True)
class Table:
    """One table: full-precision ``data`` (CSV) and formatted ``display`` cells (Markdown, TeX).

    Attributes:
        data: Numbers and labels at full precision, machine-readable column names.
        display: The same rows as strings, with the column headers a reader sees.
    """

    data: pd.DataFrame
    display: pd.DataFrame


def data_label(source: Any) -> str:
    """Human words for a metrics file's ``data_source``."""
    return DATA_LABELS.get(str(source), f"unknown data source ({source})")


def fmt(value: Any, digits: int = 2, signed: bool = False) -> str:
    """Number with fixed decimals; ``-`` for missing / NaN; other values as text."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_p(p: Any) -> str:
    """A p-value for a table: three decimals, ``<0.001`` below, ``-`` when missing."""
    if not _is_number(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def class_order(metrics: dict[str, Any], dataset: str) -> list[str]:
    """This run's class names (background excluded), in the published column order.

    The metrics JSON has sorted keys, so the class-id order is lost there; known names follow
    the published tables' order, unknown ones come after in the file's order.
    """
    names = list((metrics.get("per_class") or {}).keys())
    known = [c for c in CLASS_ORDER.get(dataset, ()) if c in names]
    return known + [c for c in names if c not in known]


def baseline_label(baseline: Mapping[str, Any]) -> str:
    """Row label naming the rule and the split it was chosen on (never the test split)."""
    rule, on = baseline.get("rule"), baseline.get("selected_on")
    where = {"train": "training cases", "val": "validation cases"}.get(on or "")
    return (
        f"intensity threshold baseline ({rule}, chosen on {where})"
        if where
        else (f"intensity threshold baseline ({rule})")
    )


def overrides_text(overrides: Mapping[str, Any] | None) -> str:
    """An ablation's change of the model section, e.g. ``gaussian=False``."""
    return ", ".join(f"{k}={v}" for k, v in sorted((overrides or {}).items()))


def variant_label(name: str, entry: Mapping[str, Any] | None) -> str:
    """A model's name, or an ablation's name with what it changes: ``no_gaussian (gaussian=False)``."""
    change = overrides_text((entry or {}).get("overrides"))
    return f"{name} ({change})" if change else name


def interval_text(stats: Mapping[str, Any] | None, digits: int = 2) -> str:
    """Mean with its intervals: ``91.30 [90.10, 92.40] seeds; [88.00, 94.10] cases``.

    ``seeds``: Student-t interval of the per-seed means (two seeds or more); ``cases``:
    percentile bootstrap over test cases. Each is shown when the comparison has it.
    """
    if not stats or not _is_number(stats.get("mean")):
        return "-"
    parts = []
    for key, word in (("seed_ci", "seeds"), ("case_ci", "cases")):
        ci = stats.get(key)
        if ci and all(_is_number(v) for v in ci):
            parts.append(f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}] {word}")
    return fmt(stats["mean"], digits) + (" " + "; ".join(parts) if parts else "")


def diff_text(row: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A paired difference with its interval: ``-1.20 [-3.00, 0.40]``."""
    if not row or not _is_number(row.get("diff")):
        return "-"
    text = fmt(row["diff"], digits, signed=True)
    if _is_number(row.get("ci_low")) and _is_number(row.get("ci_high")):
        text += f" [{fmt(row['ci_low'], digits)}, {fmt(row['ci_high'], digits)}]"
    return text


def verdict(row: Mapping[str, Any] | None, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """Words for one comparison (variant minus reference), decided by the Holm-adjusted p.

    ``"not significant"`` when ``p_holm >= alpha`` (or missing); otherwise the direction
    of the mean difference and whether it is better: ``"significantly higher (better)"``.
    The Wilcoxon test is about the typical difference, not the mean, so when it rejects but
    the mean's interval includes 0 the words say so instead of claiming a direction.
    """
    if not row:
        return "not significant"

    def num(key: str) -> float:
        return float(row[key]) if _is_number(row.get(key)) else math.nan

    found = significance(num("diff"), num("ci_low"), num("ci_high"), num("p_holm"), alpha)
    if found == "none":
        return "not significant"
    if found == "unclear":
        return "significant by Wilcoxon, but the interval of the mean difference includes 0"
    better = "better" if (found == "higher") == higher_is_better else "worse"
    return f"significantly {found} ({better})"


def _stats_columns(prefix: str, stats: Mapping[str, Any] | None) -> dict[str, Any]:
    s = stats or {}
    seed = s.get("seed_ci") or [None, None]
    case = s.get("case_ci") or [None, None]
    return {
        prefix: s.get("mean"),
        f"{prefix}_seed_low": seed[0],
        f"{prefix}_seed_high": seed[1],
        f"{prefix}_case_low": case[0],
        f"{prefix}_case_high": case[1],
    }


def _comparison_row(rows: Sequence[Mapping[str, Any]] | None, variant: str) -> dict[str, Any]:
    return next((dict(r) for r in rows or () if r.get("variant") == variant), {})


def models_table(
    comparison: Mapping[str, Any],
    models: Sequence[str],
    baseline: Mapping[str, Any] | None = None,
) -> Table:
    """One row per model (reference first): size, mean DSC and HD95 with intervals, DSC per class.

    Args:
        comparison: ``compare/<ds>/comparison.json``.
        models: The models in row order.
        baseline: The intensity-only threshold baseline (``dsc``, ``per_class``), appended
            as a last row when given: the bar a model has to clear on the same data.
    """
    classes = list(comparison.get("class_names") or [])
    reference = comparison.get("reference")
    data, shown = [], []
    for name in models:
        entry = comparison["variants"][name]
        cx = entry.get("complexity") or {}
        params = cx.get("params")
        params_m = params / 1e6 if _is_number(params) else None
        per_class = entry.get("per_class") or {}
        dsc, hd95 = entry.get("dsc") or {}, entry.get("hd95") or {}
        data.append(
            {
                "model": name,
                "reference": name == reference,
                "params_m": params_m,
                "gflops": cx.get("gflops"),
                "input": "x".join(str(v) for v in cx["input"]) if cx.get("input") else None,
                **_stats_columns("dsc", dsc),
                **_stats_columns("hd95", hd95),
                "n_seeds": dsc.get("n_seeds"),
                "n_cases": dsc.get("n_cases"),
                **{f"dsc_{c}": ((per_class.get(c) or {}).get("dsc") or {}).get("mean")
                   for c in classes},
            }
        )  # fmt: skip
        shown.append(
            {
                "Model": f"{name} (reference)" if name == reference else name,
                "Params (M)": fmt(params_m),
                "GFLOPs": fmt(cx.get("gflops")),
                "DSC (%)": interval_text(dsc),
                "HD95 (vox)": interval_text(hd95),
                **{c: fmt(data[-1][f"dsc_{c}"]) for c in classes},
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


def _ci_label(comparison: Mapping[str, Any]) -> str:
    return f"{round(100 * float(comparison.get('confidence') or 0.95))}% CI"


def difference_table(comparison: Mapping[str, Any], group: str, variants: Sequence[str]) -> Table:
    """Each variant of ``group`` (``models`` / ``ablations``) minus the reference, per metric.

    One row per variant and tested metric: the mean paired difference with its bootstrap
    interval, the Wilcoxon p-value, the Holm-adjusted p-value and the verdict in words.
    """
    ci = _ci_label(comparison)
    tests = (comparison.get("comparisons") or {}).get(group) or {}
    variants_info = comparison.get("variants") or {}
    data, shown = [], []
    for name in variants:
        for metric, rows in tests.items():
            row = _comparison_row(rows, name)
            if not row:
                continue
            label, higher = METRIC_LABELS.get(metric, (metric, True))
            words = verdict(row, higher)
            data.append(
                {
                    "variant": name,
                    "metric": metric,
                    "diff": row.get("diff"),
                    "ci_low": row.get("ci_low"),
                    "ci_high": row.get("ci_high"),
                    "p_value": row.get("p_value"),
                    "p_holm": row.get("p_holm"),
                    "n_cases": row.get("n"),
                    "verdict": words,
                }
            )
            shown.append(
                {
                    "Model": variant_label(name, variants_info.get(name)),
                    "Metric": label,
                    f"Difference [{ci}]": diff_text(row),
                    "Wilcoxon p": fmt_p(row.get("p_value")),
                    "Holm p": fmt_p(row.get("p_holm")),
                    "Verdict": words,
                }
            )
    cols = ["variant", "metric", "diff", "ci_low", "ci_high", "p_value", "p_holm", "n_cases",
            "verdict"]  # fmt: skip
    heads = ["Model", "Metric", f"Difference [{ci}]", "Wilcoxon p", "Holm p", "Verdict"]
    return Table(pd.DataFrame(data, columns=cols), pd.DataFrame(shown, columns=heads))


def ablation_table(comparison: Mapping[str, Any], full: str, ablations: Sequence[str]) -> Table:
    """The paper's ablation table: the full model, then each ablation and its change.

    DSC and HD95 with their intervals, the paired differences to ``full`` (the model the
    comparison tested the ablations against) with their intervals, the Holm-adjusted p-values
    and the verdict per metric.
    """
    ci = _ci_label(comparison)
    variants = comparison["variants"]
    tests = (comparison.get("comparisons") or {}).get("ablations") or {}
    # The ablations vary MT-UNet; a comparison made against another model says so.
    full_words = "full model" if full == "mtunet" else "the ablations' reference"
    data, shown = [], []
    for name in [full, *ablations]:
        entry = variants[name]
        change = overrides_text(entry.get("overrides")) if name != full else ""
        row: dict[str, Any] = {
            "variant": name,
            "change": change or None,
            **_stats_columns("dsc", entry.get("dsc")),
            **_stats_columns("hd95", entry.get("hd95")),
        }
        cells: dict[str, str] = {
            "Variant": name if name != full else f"{name} ({full_words})",
            "Change": change or "(none)",
            "DSC (%)": interval_text(entry.get("dsc")),
            "HD95 (vox)": interval_text(entry.get("hd95")),
        }
        words, holm_p = [], []
        for metric in ("dsc", "hd95"):
            test = _comparison_row(tests.get(metric), name) if name != full else {}
            label, higher = METRIC_LABELS[metric]
            row.update(
                {
                    f"{metric}_diff": test.get("diff"),
                    f"{metric}_ci_low": test.get("ci_low"),
                    f"{metric}_ci_high": test.get("ci_high"),
                    f"{metric}_p_value": test.get("p_value"),
                    f"{metric}_p_holm": test.get("p_holm"),
                    f"{metric}_verdict": verdict(test, higher) if test else None,
                }
            )
            cells[f"Δ{label.split(' ')[0]} [{ci}]"] = diff_text(test)
            if test:
                words.append(f"{label.split(' ')[0]}: {row[f'{metric}_verdict']}")
                holm_p.append(fmt_p(test.get("p_holm")))
        cells["Holm p (DSC / HD95)"] = " / ".join(holm_p) if holm_p else "-"
        cells["Verdict"] = "; ".join(words) if words else "-"
        data.append(row)
        shown.append(cells)
    return Table(pd.DataFrame(data), pd.DataFrame(shown))


def surface_table(
    comparison: Mapping[str, Any], variants: Sequence[str], nsd_label: str
) -> Table | None:
    """Per variant: HD95 as medpy (published), HD95 as MONAI, normalised surface Dice.

    Returns None when the comparison has neither ``hd95_monai`` nor ``nsd`` (per-case tables
    from before these metrics were computed).
    """
    entries = comparison["variants"]
    metrics = [m for m in ("hd95", "hd95_monai", "nsd") if any(m in entries[v] for v in variants)]
    if not {"hd95_monai", "nsd"} & set(metrics):
        return None
    heads = {
        "hd95": "HD95 medpy (vox)",
        "hd95_monai": "HD95 MONAI (vox)",
        "nsd": f"NSD (%), {nsd_label}",
    }
    data, shown = [], []
    for name in variants:
        entry = entries[name]
        row: dict[str, Any] = {"variant": name, "kind": entry.get("kind")}
        cells = {"Model": variant_label(name, entry)}
        for m in metrics:
            row.update(_stats_columns(m, entry.get(m)))
            cells[heads[m]] = interval_text(entry.get(m))
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


def per_class_table(dataset: str, metrics: dict[str, Any]) -> pd.DataFrame:
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


def _cells(df: pd.DataFrame, digits: int, signed_cols: Sequence[str]) -> list[list[str]]:
    out = []
    for _, row in df.iterrows():
        out.append(
            [
                fmt(None if _isna(v) else v, digits, signed=str(c) in signed_cols)
                for c, v in row.items()
            ]
        )
    return out


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def to_markdown(
    df: pd.DataFrame,
    headers: Sequence[str] | None = None,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
) -> str:
    """A GitHub-flavoured Markdown table (numbers with ``digits`` decimals)."""
    heads = [str(h) for h in (headers or df.columns)]
    esc = [h.replace("|", "\\|") for h in heads]
    lines = ["| " + " | ".join(esc) + " |", "|" + "---|" * len(heads)]
    for cells in _cells(df, digits, signed_cols):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
    "τ": r"$\tau$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(
    df: pd.DataFrame,
    caption: str,
    label: str,
    headers: Sequence[str] | None = None,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    heads = [latex_escape(str(h)) for h in (headers or df.columns)]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(heads) + r" \\",
        r"\midrule",
    ]
    for cells in _cells(df, digits, signed_cols):
        lines.append(" & ".join(latex_escape(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame,
    out_dir: Path,
    stem: str,
    caption: str,
    digits: int = 2,
    signed_cols: Sequence[str] = (),
    display: pd.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (``df``, full precision) and ``<stem>.tex`` under ``out_dir``.

    Args:
        df: The table's numbers; written to the CSV file as they are.
        out_dir: Output folder.
        stem: File name without suffix; the LaTeX label is ``tab:<stem>``.
        caption: LaTeX caption.
        digits: Decimals of the numbers in the LaTeX table.
        signed_cols: Columns printed with a sign in the LaTeX table.
        display: Formatted cells for the LaTeX table (its columns are the headers); ``df``
            itself when None.

    Returns:
        The CSV and LaTeX paths.
    """
    csv_path = Path(out_dir) / f"{stem}.csv"
    tex_path = Path(out_dir) / f"{stem}.tex"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    shown = df if display is None else display
    write_text(
        tex_path, to_latex(shown, caption, f"tab:{stem}", digits=digits, signed_cols=signed_cols)
    )
    return csv_path, tex_path


def write_both(table: Table, out_dir: Path, stem: str, caption: str) -> tuple[Path, Path]:
    """:func:`write_table` for a :class:`Table`: numbers to CSV, formatted cells to LaTeX."""
    return write_table(table.data, out_dir, stem, caption, display=table.display)
