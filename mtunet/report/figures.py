"""One dataset's figures: the differences to the reference (forest plot), Dice per case by
variant (with its data as CSV), and the reference model's Dice per class, training curves and
qualitative slices. A figure whose inputs are missing is left out, with a note where it was
expected."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtunet.fileio import atomic_path
from mtunet.report import plots
from mtunet.report.inputs import DatasetInputs, class_names_by_id, read_curves
from mtunet.report.model import Figure
from mtunet.report.results import Results

_XLABELS = {
    "dsc": "ΔDSC (% points), variant − reference",
    "hd95": "ΔHD95 (voxels), variant − reference",
}


@dataclass(frozen=True)
class FigureSettings:
    """Where and how the figures are drawn.

    Attributes:
        out_dir: The report's folder; figures go to ``figures/`` under it.
        title: The dataset's title, heading every figure.
        label: The data source in words (``synthetic phantoms``).
        dpi: PNG resolution.
        max_qualitative: Slices in the qualitative figure.
    """

    out_dir: Path
    title: str
    label: str
    dpi: int
    max_qualitative: int

    @property
    def fig_dir(self) -> Path:
        """``figures/`` under the report's folder."""
        return self.out_dir / "figures"

    def figure(self, png: Path, data: Path | None = None) -> Figure:
        """A :class:`Figure` with paths relative to ``report.md``."""
        return Figure(_rel_link(png, self.out_dir), _rel_link(data, self.out_dir) if data else None)


def _rel_link(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


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


def forest_figure(inp: DatasetInputs, res: Results, fs: FigureSettings) -> Figure | None:
    """Every tested variant's DSC and HD95 difference to the reference with its interval."""
    rows = []
    for group, names in (("models", res.models), ("ablations", res.ablations)):
        for name in names:
            other_ref = group == "ablations" and res.ablation_reference != res.reference
            row: dict[str, Any] = {
                "label": res.variants[name].label
                + (f" vs {res.ablation_reference}" if other_ref else ""),
                "group": "model" if group == "models" else "ablation",
            }
            found = False
            for metric in ("dsc", "hd95"):
                d = res.difference(group, name, metric)
                if d is None:
                    continue
                found = True
                row.update(
                    {
                        f"{metric}_diff": d.diff,
                        f"{metric}_ci_low": d.interval.low,
                        f"{metric}_ci_high": d.interval.high,
                        f"{metric}_significant": d.significant,
                    }
                )
            if found:
                rows.append(row)
    if not rows:
        return None
    data = pd.DataFrame(rows)
    metrics = [(m, _XLABELS[m]) for m in ("dsc", "hd95") if f"{m}_diff" in data.columns]
    png = plots.forest_plot(
        data,
        metrics,
        f"{fs.title}: difference to {res.reference} (Bonferroni-adjusted CI: the verdict's)",
        fs.fig_dir / f"{inp.dataset}_forest.png",
        fs.dpi,
    )
    return fs.figure(png)


def per_case_figure(inp: DatasetInputs, res: Results, fs: FigureSettings) -> Figure | None:
    """Each test case's mean foreground Dice by variant, and its data as CSV."""
    if inp.per_case is None:
        return None
    scores = case_dice(inp.per_case)
    order = [v for v in [*res.models, *res.ablations] if v in set(scores["variant"])]
    data_path = fs.fig_dir / f"{inp.dataset}_dice_per_case.csv"
    data_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(data_path) as tmp:
        scores.to_csv(tmp, index=False, lineterminator="\n")
    png = plots.per_case_variant_plot(
        scores,
        order,
        f"{fs.title}: Dice per test case ({fs.label})",
        fs.fig_dir / f"{inp.dataset}_dice_per_case.png",
        fs.dpi,
    )
    return fs.figure(png, data_path)


def per_class_figure(inp: DatasetInputs, fs: FigureSettings) -> Figure | None:
    """The reference model's Dice per class over the test cases."""
    if inp.per_case is None:
        return None
    ref = inp.reference
    sub = inp.per_case[(inp.per_case["variant"] == ref) & (inp.per_case["class_id"] > 0)]
    if not len(sub):
        return None
    per_class = (
        sub.assign(dice=pd.to_numeric(sub["dice"], errors="coerce"))
        .groupby(["case", "class_id", "class_name"], sort=False)["dice"]
        .mean()
        .reset_index()
    )
    png = plots.dice_per_class_plot(
        per_class,
        f"{fs.title}: {ref}, Dice per class ({fs.label})",
        fs.fig_dir / f"{inp.dataset}_dice_per_class.png",
        fs.dpi,
    )
    return fs.figure(png)


def reference_run_figures(
    inp: DatasetInputs, fs: FigureSettings, notes: list[str]
) -> tuple[dict[str, Figure], tuple[str, ...]]:
    """The reference model's first seed: training curves and qualitative slices.

    Returns:
        The figures drawn (``training``, ``qualitative``) and the names of the curves found.
    """
    run, ds = inp.reference_run, inp.dataset
    if run is None:
        return {}, ()
    figures: dict[str, Figure] = {}
    seed_text = f"{inp.reference}, seed {run.seed}"
    curves = read_curves(run.live_dir)
    if curves:
        png = plots.training_curves_plot(
            curves, f"{fs.title}: training ({seed_text})", fs.fig_dir / f"{ds}_training.png", fs.dpi
        )
        figures["training"] = fs.figure(png)
    else:
        notes.append(f"{ds}: no DVCLive training logs under `{run.live_dir.as_posix()}`.")
    qual_path = run.eval_dir / "qualitative.npz"
    if not qual_path.is_file():
        notes.append(f"{ds}: qualitative slices `{qual_path.as_posix()}` not found.")
        return figures, tuple(curves)
    with np.load(qual_path, allow_pickle=False) as z:
        qual = {k: z[k] for k in z.files}
    if len(qual.get("image", [])):
        png = plots.qualitative_plot(
            qual,
            class_names_by_id(inp),
            f"{fs.title}, {seed_text}: ground truth (solid) and prediction (dashed)",
            fs.fig_dir / f"{ds}_qualitative.png",
            fs.dpi,
            fs.max_qualitative,
        )
        figures["qualitative"] = fs.figure(png)
    else:
        notes.append(f"{ds}: `{qual_path.as_posix()}` holds no slices.")
    return figures, tuple(curves)


def dataset_figures(
    inp: DatasetInputs, res: Results, fs: FigureSettings, notes: list[str]
) -> tuple[dict[str, Figure], tuple[str, ...]]:
    """Every figure of one dataset, by kind, and the reference run's training curves found."""
    figures: dict[str, Figure] = {}
    for kind, fig in (
        ("forest", forest_figure(inp, res, fs)),
        ("dice_per_case", per_case_figure(inp, res, fs)),
        ("dice_per_class", per_class_figure(inp, fs)),
    ):
        if fig is not None:
            figures[kind] = fig
    run_figures, curves = reference_run_figures(inp, fs, notes)
    return figures | run_figures, curves
