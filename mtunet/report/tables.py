"""Result tables (this run beside the published rows) as Markdown, CSV and LaTeX."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mtunet.fileio import atomic_path, write_text
from mtunet.report.published import ACDC_ORDER, PUBLISHED, SYNAPSE_ORDER

CLASS_ORDER = {"synapse": SYNAPSE_ORDER, "acdc": ACDC_ORDER}
DATA_LABELS = {
    "synthetic": "synthetic phantoms",
    "raw": "real data (raw release)",
    "release": "real data (preprocessed release)",
}


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


def class_order(metrics: dict[str, Any], dataset: str) -> list[str]:
    """This run's class names (background excluded), in the published column order.

    The metrics JSON has sorted keys, so the class-id order is lost there; known names follow
    the published tables' order, unknown ones come after in the file's order.
    """
    names = list((metrics.get("per_class") or {}).keys())
    known = [c for c in CLASS_ORDER.get(dataset, ()) if c in names]
    return known + [c for c in names if c not in known]


def _baseline_label(baseline: dict[str, Any]) -> str:
    """Row label naming the rule and the split it was chosen on (never the test split)."""
    rule, on = baseline.get("rule"), baseline.get("selected_on")
    where = {"train": "training cases", "val": "validation cases"}.get(on or "")
    return (
        f"intensity threshold baseline ({rule}, chosen on {where})"
        if where
        else (f"intensity threshold baseline ({rule})")
    )


def results_table(dataset: str, metrics: dict[str, Any]) -> pd.DataFrame:
    """DSC per class: this run's row, its intensity-only baseline, then the published rows.

    The baseline row (when the metrics file has ``threshold_baseline``) is on the same data
    as this run: the bar that a model which learnt shape and position has to clear.
    Columns: ``method, data, dsc, hd95, <class>...`` (DSC in %, HD95 in voxels).
    """
    classes = class_order(metrics, dataset)
    per_class = metrics.get("per_class") or {}
    label = data_label(metrics.get("data_source"))
    rows: list[dict[str, Any]] = [
        {
            "method": "MT-UNet (this run)",
            "data": label,
            "dsc": metrics.get("dsc"),
            "hd95": metrics.get("hd95"),
            **{c: (per_class.get(c) or {}).get("dsc") for c in classes},
        }
    ]
    baseline = metrics.get("threshold_baseline")
    if baseline:
        rows.append(
            {
                "method": _baseline_label(baseline),
                "data": label,
                "dsc": baseline.get("dsc"),
                "hd95": None,
                **{c: (baseline.get("per_class") or {}).get(c) for c in classes},
            }
        )
    for pub in PUBLISHED.get(dataset, []):
        rows.append(
            {
                "method": pub["method"],
                "data": "published, real data",
                "dsc": pub["dsc"],
                "hd95": pub["hd95"],
                **{c: pub["per_class"].get(c) for c in classes},
            }
        )
    return pd.DataFrame(rows, columns=["method", "data", "dsc", "hd95", *classes])


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
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (full precision) and ``<stem>.tex`` under ``out_dir``."""
    csv_path = Path(out_dir) / f"{stem}.csv"
    tex_path = Path(out_dir) / f"{stem}.tex"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    write_text(
        tex_path, to_latex(df, caption, f"tab:{stem}", digits=digits, signed_cols=signed_cols)
    )
    return csv_path, tex_path
