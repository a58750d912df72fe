"""``reports/report.md``: results beside the published numbers, experiments, figures, protocol."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtunet.config import check, from_dict, load_params, to_dict
from mtunet.fileio import read_json, write_text
from mtunet.report import plots
from mtunet.report.experiments import collect_experiments, comparison_rows
from mtunet.report.published import PAPER_SETUP, PUBLISHED_NOTES
from mtunet.report.tables import (
    class_order,
    data_label,
    fmt,
    per_class_table,
    results_table,
    to_markdown,
    write_table,
)

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
    if not manifest:
        return "not available (dataset manifest missing)"
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


def _class_names_by_id(
    metrics: dict[str, Any], ds: str, per_case_path: Path, manifest: dict[str, Any] | None
) -> list[str]:
    """Class names indexed by class id: from the per-case CSV, the manifest, or the order of
    the published tables (the metrics JSON's sorted keys lose the ids)."""
    if per_case_path.is_file():
        df = pd.read_csv(per_case_path)
        if {"class_id", "class_name"} <= set(df.columns):
            ids = dict(zip(df["class_id"].astype(int), df["class_name"].astype(str), strict=True))
            return [ids.get(i, str(i)) if i else "background" for i in range(max(ids) + 1)]
    if manifest and isinstance(manifest.get("class_names"), list):
        return [str(c) for c in manifest["class_names"]]
    return ["background", *class_order(metrics, ds)]


def _dataset_section(
    ds: str,
    metrics: dict[str, Any],
    eval_dir: Path,
    live_dir: Path,
    models_dir: Path,
    data_dir: Path,
    out_dir: Path,
    cfg: ReportConfig,
    notes: list[str],
) -> tuple[list[str], list[str]]:
    """Markdown lines of one dataset's results and its protocol lines."""
    fig_dir = out_dir / "figures"
    tab_dir = out_dir / "tables"
    title = TITLES.get(ds, ds)
    source = metrics.get("data_source")
    label = data_label(source)
    lines = [f"## {title} (`{ds}`)", ""]
    lines.append(
        f"**Data used by this run: {label}**"
        + (
            " (generated phantoms; numbers are NOT comparable with the published rows, "
            "which are on real data)."
            if source == "synthetic"
            else "."
        )
    )
    lines.append("")

    # Results beside the published rows.
    res = results_table(ds, metrics)
    classes = list(res.columns[4:])
    headers = ["Method", "Data", "DSC (%)", "HD95 (vox)", *classes]
    lines.append("Mean DSC (%) and HD95 (voxels), DSC (%) per class:")
    lines.append("")
    lines.append(to_markdown(res, headers))
    if ds in PUBLISHED_NOTES:
        lines.append(f"_{PUBLISHED_NOTES[ds]}_")
        lines.append("")
    write_table(
        res,
        tab_dir,
        f"{ds}_results",
        f"{title}: this run ({label}) and published results (real data)",
    )

    pc = per_class_table(ds, metrics)
    lines.append("This run per class (DSC %, HD95 in voxels and in mm):")
    lines.append("")
    lines.append(to_markdown(pc, ["Class", "DSC (%)", "HD95 (vox)", "HD95 (mm)"]))
    write_table(pc, tab_dir, f"{ds}_per_class", f"{title}: this run per class ({label})")
    lines.append(
        f"Tables: [`tables/{ds}_results.csv`](tables/{ds}_results.csv), "
        f"[`.tex`](tables/{ds}_results.tex); [`tables/{ds}_per_class.csv`](tables/{ds}_per_class.csv), "
        f"[`.tex`](tables/{ds}_per_class.tex)."
    )
    lines.append("")

    manifest = _optional_json(data_dir / ds / "dataset.json", notes, f"{ds} manifest")

    # Figures.
    per_case_path = eval_dir / ds / "per_case.csv"
    if per_case_path.is_file():
        per_case = pd.read_csv(per_case_path)
        if "class_name" not in per_case.columns:
            per_case["class_name"] = per_case["class_id"].astype(str)
        png = plots.dice_per_case_plot(
            per_case,
            f"{title}: Dice per case ({label})",
            fig_dir / f"{ds}_dice_per_case.png",
            cfg.dpi,
        )
        lines += [f"![Dice per case, {ds}]({_rel_link(png, out_dir)})", ""]
    else:
        notes.append(f"{ds}: per-case table `{per_case_path.as_posix()}` not found (no box plot).")

    curves = _read_curves(live_dir / ds)
    if curves:
        png = plots.training_curves_plot(
            curves, f"{title}: training", fig_dir / f"{ds}_training.png", cfg.dpi
        )
        lines += [f"![Training curves, {ds}]({_rel_link(png, out_dir)})", ""]
        missing = sorted({"loss", "lr", "val_dice", "epoch_loss"} - set(curves))
        if "val_dice" in missing:
            lines += ["_No validation Dice curve: the dataset has no validation split._", ""]
    else:
        notes.append(f"{ds}: no DVCLive training logs under `{(live_dir / ds).as_posix()}`.")

    qual_path = eval_dir / ds / "qualitative.npz"
    class_names = _class_names_by_id(metrics, ds, per_case_path, manifest)
    if qual_path.is_file():
        with np.load(qual_path, allow_pickle=False) as z:
            qual = {k: z[k] for k in z.files}
        if len(qual.get("image", [])):
            png = plots.qualitative_plot(
                qual,
                class_names,
                f"{title}: ground truth (solid) and prediction (dashed)",
                fig_dir / f"{ds}_qualitative.png",
                cfg.dpi,
                cfg.max_qualitative,
            )
            lines += [f"![Qualitative results, {ds}]({_rel_link(png, out_dir)})", ""]
        else:
            notes.append(f"{ds}: `{qual_path.as_posix()}` holds no slices.")
    else:
        notes.append(f"{ds}: qualitative slices `{qual_path.as_posix()}` not found.")

    # Protocol.
    train_info = None
    if (models_dir / ds / "train.json").is_file():
        train_info = _optional_json(models_dir / ds / "train.json", notes, f"{ds} train.json")
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
    protocol = [
        f"### {title}",
        "",
        f"- Data: {label}; {metrics.get('n_cases', '?')} test cases evaluated.",
        f"- Split: {_split_text(manifest)}.",
        f"- Model selection: {_selection_text(metrics.get('model_selection'), train_info)}.",
        f"- Training: {_training_text(train_info)}.",
        f"- Computed on: {_machine_text(train_info)}.",
        f"- Empty-mask convention: {conv}. (case, class) pairs affected: "
        f"ground truth empty {counts.get('gt_empty', 0)}, prediction empty "
        f"{counts.get('pred_empty', 0)}, both empty {counts.get('both_empty', 0)}.",
        "- HD95: medpy's definition (6-connected surfaces, 95th percentile of both directions "
        "pooled), in voxels as the published tables"
        + (
            f"; also in mm with each volume's spacing (mean {fmt(mm)} mm)."
            if isinstance(mm, (int, float))
            else "; no mm values (volumes without spacing)."
        ),
        "",
    ]
    return lines, protocol


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
    metrics_dir: str | os.PathLike[str],
    eval_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str],
    params_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    repo_dir: str | os.PathLike[str] = ".",
    models_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``out_dir/report.md`` with ``figures/*.png`` and ``tables/*.{csv,tex}``.

    Args:
        datasets: Dataset names (``"synapse"``, ``"acdc"``) in report order.
        metrics_dir: Folder with ``<ds>.json`` metrics files (required).
        eval_dir: Folder with ``<ds>/per_case.csv`` and ``<ds>/qualitative.npz`` (optional).
        live_dir: DVCLive folder with ``<ds>/plots/metrics/...`` (optional).
        params_path: ``params.yaml``; its ``report`` section configures the report.
        out_dir: Output folder (``reports``).
        repo_dir: Git repository root, for the experiment comparison (read with ``git``
            only; never ``dvc``, whose lock the running stage holds).
        models_dir: Folder with ``<ds>/train.json`` (default ``repo_dir/models``; optional).
        data_dir: Folder with ``<ds>/dataset.json`` (default ``repo_dir/data/processed``).

    Returns:
        Path of ``report.md``.

    Raises:
        ValueError: No datasets, or an invalid ``report`` params section / metrics file.
        FileNotFoundError: A dataset's metrics file is missing.
    """
    if not datasets:
        raise ValueError("datasets: at least one dataset is needed for the report")
    repo = Path(repo_dir)
    metrics_dir, eval_dir, live_dir = Path(metrics_dir), Path(eval_dir), Path(live_dir)
    params_path, out_dir = Path(params_path), Path(out_dir)
    models = Path(models_dir) if models_dir is not None else repo / "models"
    data = Path(data_dir) if data_dir is not None else repo / "data" / "processed"

    notes: list[str] = []
    params: dict[str, Any] = {}
    if params_path.is_file():
        params = load_params(params_path)
    else:
        notes.append(f"params file `{params_path.as_posix()}` not found; report defaults used.")
    cfg = ReportConfig.from_dict(params.get("report"), "report")

    all_metrics: dict[str, dict[str, Any]] = {}
    for ds in datasets:
        path = metrics_dir / f"{ds}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: metrics file for dataset {ds!r} not found")
        m = read_json(path)
        if not isinstance(m, dict) or "per_class" not in m:
            raise ValueError(f"{path}: not a metrics file (no 'per_class' entry)")
        all_metrics[ds] = m

    body: list[str] = []
    protocol: list[str] = []
    for ds in datasets:
        lines, prot = _dataset_section(
            ds, all_metrics[ds], eval_dir, live_dir, models, data, out_dir, cfg, notes
        )
        body += lines
        protocol += prot

    summary = ", ".join(
        f"{TITLES.get(ds, ds)}: mean DSC {fmt(all_metrics[ds].get('dsc'))} %, HD95 "
        f"{fmt(all_metrics[ds].get('hd95'))} voxels on {data_label(all_metrics[ds].get('data_source'))}"
        for ds in datasets
    )
    md = [f"# {cfg.title}", "", f"Summary: {summary}.", ""]
    if any(m.get("data_source") == "synthetic" for m in all_metrics.values()):
        md += [
            "> This run used **synthetic phantoms**, not the real scans: its numbers check the "
            "pipeline end to end and are not comparable with the published rows (marked "
            '"published, real data").',
            "",
        ]
    md += body
    md += _experiments_section(repo, datasets, metrics_dir, params_path, out_dir, notes)
    md += ["## Protocol", "", *protocol]
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    text = "\n".join(md).rstrip() + "\n"
    report = out_dir / "report.md"
    write_text(report, text)
    return report


__all__ = ["ReportConfig", "build_report"]
