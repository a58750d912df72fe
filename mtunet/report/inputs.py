"""What the report reads for one dataset: the metrics file, the comparison and its per-case
table (required or noted), the reference run's DVCLive curves and JSON files (optional).

A required file that is missing or malformed raises an error naming it; a missing optional
input adds a line to the report's notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtunet.fileio import read_json
from mtunet.study import RunPaths


def read_curve(path: Path) -> pd.DataFrame | None:
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


def read_curves(live_dir: Path) -> dict[str, pd.DataFrame]:
    """A run's training curves by name (``loss``, ``epoch_loss``, ``lr``, ``val_dice``)."""
    base = live_dir / "plots" / "metrics"
    files = {
        "loss": base / "train" / "loss.tsv",
        "epoch_loss": base / "train" / "epoch_loss.tsv",
        "lr": base / "train" / "lr.tsv",
        "val_dice": base / "val" / "dice.tsv",
    }
    return {k: df for k, p in files.items() if (df := read_curve(p)) is not None}


def optional_json(path: Path, notes: list[str], what: str) -> dict[str, Any] | None:
    """A JSON object file, or None with a note saying why (missing, unreadable, not a dict)."""
    if not path.is_file():
        notes.append(f"{what}: `{path.as_posix()}` not found.")
        return None
    try:
        value = read_json(path)
    except ValueError as exc:
        notes.append(f"{what}: {exc}")
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class DatasetInputs:
    """What the report reads for one dataset.

    Attributes:
        dataset: Dataset key.
        metrics: ``metrics/<ds>.json``: the reference model, means over its seeds.
        comparison: ``compare/<ds>/comparison.json``.
        per_case: ``compare/<ds>/per_case.csv`` (every run's per-case rows), when present.
        models: The models in the study's order, reference first.
        ablations: The ablations in the study's order.
        reference_run: The reference model's first-seed run (None without a seed).
    """

    dataset: str
    metrics: dict[str, Any]
    comparison: dict[str, Any]
    per_case: pd.DataFrame | None
    models: list[str]
    ablations: list[str]
    reference_run: RunPaths | None

    @property
    def reference(self) -> str:
        """The comparison's reference model."""
        return str(self.comparison["reference"])


def variant_order(comparison: dict[str, Any], per_case: pd.DataFrame | None) -> list[str]:
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


def load_inputs(ds: str, root: Path, notes: list[str]) -> DatasetInputs:
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
    order = variant_order(comparison, per_case)
    kinds = {v: comparison["variants"][v].get("kind", "model") for v in order}
    ref = str(comparison["reference"])
    seeds = list(comparison["variants"][ref].get("seeds") or [])
    if not seeds and per_case is not None:
        seeds = list(dict.fromkeys(per_case.loc[per_case["variant"] == ref, "seed"].astype(int)))
    run = RunPaths(ds, ref, int(seeds[0]), root) if seeds else None
    if run is None:
        notes.append(f"{ds}: no seed recorded for {ref}; its training run is not shown.")
    return DatasetInputs(
        dataset=ds,
        metrics=metrics,
        comparison=comparison,
        per_case=per_case,
        models=[v for v in order if kinds[v] == "model"],
        ablations=[v for v in order if kinds[v] != "model"],
        reference_run=run,
    )


def class_names_by_id(inp: DatasetInputs) -> list[str]:
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
