"""Numbers and words of the report: fixed decimals, p-values, labels, verdicts.

Shared by the tables, the data model and the template (as Jinja filters), so a number reads
the same wherever it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ALPHA = 0.05
TITLES = {"synapse": "Synapse multi-organ CT", "acdc": "ACDC cardiac MRI"}
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


def is_number(v: Any) -> bool:
    """A real, finite-or-infinite number that is not a bool and not NaN."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


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
    if not is_number(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def data_label(source: Any) -> str:
    """Human words for a metrics file's ``data_source``."""
    return DATA_LABELS.get(str(source), f"unknown data source ({source})")


def baseline_label(baseline: Mapping[str, Any]) -> str:
    """Row label naming the rule and the split it was chosen on (never the test split)."""
    rule, on = baseline.get("rule"), baseline.get("selected_on")
    where = {"train": "training cases", "val": "validation cases"}.get(on or "")
    return (
        f"intensity threshold baseline ({rule}, chosen on {where})"
        if where
        else f"intensity threshold baseline ({rule})"
    )


def overrides_text(overrides: Mapping[str, Any] | None) -> str:
    """An ablation's change of the model section, e.g. ``gaussian=False``."""
    return ", ".join(f"{k}={v}" for k, v in sorted((overrides or {}).items()))


def variant_label(name: str, entry: Mapping[str, Any] | None) -> str:
    """A model's name, or an ablation's name with what it changes: ``no_gaussian (gaussian=False)``."""
    change = overrides_text((entry or {}).get("overrides"))
    return f"{name} ({change})" if change else name


def diff_text(row: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A paired difference with its interval: ``-1.20 [-3.00, 0.40]``."""
    if not row or not is_number(row.get("diff")):
        return "-"
    text = fmt(row["diff"], digits, signed=True)
    if is_number(row.get("ci_low")) and is_number(row.get("ci_high")):
        text += f" [{fmt(row['ci_low'], digits)}, {fmt(row['ci_high'], digits)}]"
    return text


def verdict(row: Mapping[str, Any] | None, higher_is_better: bool) -> str:
    """Words for one comparison (variant minus reference): its recorded ``verdict``.

    ``"not significant"`` unless the comparison's interval (at the family's adjusted level)
    excludes 0; then the direction of the difference and whether it is better:
    ``"significantly higher (better)"``.
    """
    found = (row or {}).get("verdict")
    if found not in ("higher", "lower"):
        return "not significant"
    better = "better" if (found == "higher") == higher_is_better else "worse"
    return f"significantly {found} ({better})"
