"""The metrics JSON of a dataset from its per-case table (means over cases, then classes)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtunet.metrics.cases import CONVENTIONS, EMPTY_POLICIES


def _mean_or_none(values: Sequence[float]) -> float | None:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else None


def summarize(
    per_case: Any,
    class_names: Sequence[str] | Mapping[int, str],
    empty_policy: str | None = None,
    model_selection: Mapping[str, Any] | None = None,
    data_source: str | None = None,
) -> dict[str, Any]:
    """The metrics JSON (``metrics/<dataset>.json``) from the per-case table.

    Means are taken over cases for each class, then over classes (as the published tables);
    NaN entries (``empty_policy="nan"``) are left out of the means.

    Args:
        per_case: pandas DataFrame with columns ``case, class_id, dice, hd95, hd95_mm,
            convention`` (``class_name`` optional), one row per case and class.
        class_names: Names indexed by class id (index 0 = background), or a mapping.
        empty_policy: Recorded in the JSON; inferred from the table when None
            (``"nan"`` if an empty-mask row holds NaN, else ``"published"``).
        model_selection: Copied into the JSON when given (from the checkpoint).
        data_source: ``"synthetic"``, ``"raw"`` or ``"release"``; copied when given.

    Returns:
        ``{"dsc": %, "hd95": voxels, "hd95_mm": mm or None, "n_cases", "empty_policy",
        "empty_mask_cases": {"gt_empty", "pred_empty", "both_empty"}, "per_class":
        {name: {"dsc", "hd95", "hd95_mm"}}}`` (+ ``model_selection``, ``data_source``).
        ``hd95_mm`` is None when any scored row lacks it (a volume without spacing).

    Raises:
        ValueError: Missing columns, unknown conventions or class ids, an empty table.
    """
    import pandas as pd

    if not isinstance(per_case, pd.DataFrame):
        raise ValueError(f"per_case: expected a pandas DataFrame, got {type(per_case).__name__}")
    required = ["case", "class_id", "dice", "hd95", "hd95_mm", "convention"]
    missing = [c for c in required if c not in per_case.columns]
    if missing:
        raise ValueError(f"per_case: missing column(s) {missing}")
    if per_case.empty:
        raise ValueError("per_case: the table has no rows")
    bad = sorted(set(per_case["convention"]) - set(CONVENTIONS))
    if bad:
        raise ValueError(
            f"per_case.convention: unknown value(s) {bad}; expected {list(CONVENTIONS)}"
        )
    if empty_policy is not None and empty_policy not in EMPTY_POLICIES:
        raise ValueError(
            f"empty_policy: must be one of {list(EMPTY_POLICIES)}, got {empty_policy!r}"
        )
    names = dict(class_names) if isinstance(class_names, Mapping) else dict(enumerate(class_names))
    df = per_case.copy()
    df["class_id"] = df["class_id"].astype(int)
    for col in ("dice", "hd95", "hd95_mm"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    unknown = sorted(set(df["class_id"]) - set(names))
    if unknown:
        raise ValueError(f"class_names: no name for class id(s) {unknown}")
    dup = df.duplicated(["case", "class_id"])
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            f"per_case: duplicate row for case {first['case']!r}, class {first['class_id']}"
        )
    empty = df["convention"] != "both"
    if empty_policy is None:
        empty_policy = "nan" if df.loc[empty, "hd95"].isna().any() else "published"

    per_class: dict[str, dict[str, float | None]] = {}
    class_dsc: list[float] = []
    class_hd: list[float] = []
    class_mm: list[float] = []
    mm_complete = True
    for cid in sorted(df["class_id"].unique()):
        sub = df[df["class_id"] == cid]
        scored = sub["hd95"].notna()
        mm_missing = bool(sub.loc[scored, "hd95_mm"].isna().any())
        mm_complete &= not mm_missing
        dsc = _mean_or_none(sub["dice"].to_numpy() * 100.0)
        hd = _mean_or_none(sub["hd95"].to_numpy())
        mm = None if mm_missing else _mean_or_none(sub["hd95_mm"].to_numpy())
        per_class[str(names[cid])] = {"dsc": dsc, "hd95": hd, "hd95_mm": mm}
        class_dsc.append(math.nan if dsc is None else dsc)
        class_hd.append(math.nan if hd is None else hd)
        class_mm.append(math.nan if mm is None else mm)

    counts = df["convention"].value_counts()
    return {
        "dsc": _mean_or_none(class_dsc),
        "hd95": _mean_or_none(class_hd),
        "hd95_mm": _mean_or_none(class_mm) if mm_complete else None,
        "n_cases": int(df["case"].nunique()),
        "empty_policy": empty_policy,
        "empty_mask_cases": {c: int(counts.get(c, 0)) for c in CONVENTIONS[1:]},
        "per_class": per_class,
        **({"model_selection": dict(model_selection)} if model_selection is not None else {}),
        **({"data_source": data_source} if data_source is not None else {}),
    }
