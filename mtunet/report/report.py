"""``reports/report.md``: the study's comparison per dataset, experiments, figures, protocol.

:func:`build_report` reads each dataset's results (:mod:`mtunet.report.inputs`), writes its
tables (``tables/*.csv``, ``*.tex``) and figures (``figures/*.png``), gathers them in the
data model (:mod:`mtunet.report.model`) and renders the template (``report.template``, by
default the packaged ``templates/report.md.j2``) into ``report.md``.

Per dataset the packaged template shows: the models with their size and intervals, their
differences to the reference (table and forest plot), Dice per case by model, the ablations,
the surface-distance conventions, the reference model in detail (per class, training curves,
slices of its first seed) and the published numbers on the real data in a table of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mtunet.config import load_params
from mtunet.fileio import write_text
from mtunet.report.config import ReportConfig
from mtunet.report.experiments import collect_experiments, comparison_rows
from mtunet.report.figures import FigureSettings, case_dice, dataset_figures
from mtunet.report.formatting import TITLES, data_label
from mtunet.report.inputs import DatasetInputs, load_inputs, optional_json
from mtunet.report.model import DatasetReport, Protocol, Report, ReportTable
from mtunet.report.published import PUBLISHED_NOTES
from mtunet.report.render import load_template, render, template_path
from mtunet.report.results import Results
from mtunet.report.spread import RerunSpread, load_spread
from mtunet.report.table_files import display_cells, write_table
from mtunet.report.tables import (
    Table,
    ablation_table,
    difference_table,
    experiments_table,
    models_table,
    per_class_table,
    published_table,
    spread_table,
    surface_table,
)
from mtunet.report.text import (
    EXPERIMENTS_CAPTION,
    ablations_caption,
    differences_caption,
    machine_text,
    models_caption,
    nsd_label,
    per_class_caption,
    published_caption,
    sampling,
    selection_text,
    split_text,
    spread_caption,
    study_text,
    surface_caption,
    training_text,
)

PER_CLASS_HEADERS = ["Class", "DSC (%)", "HD95 (vox)", "HD95 (mm)"]


def _write(table: Table, tab_dir: Path, stem: str, caption: str) -> ReportTable:
    """Write a table (numbers to CSV, formatted cells to LaTeX) and return it for the model."""
    write_table(table.data, tab_dir, stem, caption, display=table.display)
    return ReportTable(stem, caption, table.data, display_cells(table.display))


#: Where ``benchmarks/rerun_spread.py`` writes its measurement (relative to the repository).
SPREAD_FILE = Path("benchmarks") / "results" / "rerun_spread.json"


def _dataset_tables(
    inp: DatasetInputs,
    res: Results,
    title: str,
    label: str,
    tab_dir: Path,
    notes: list[str],
    spread: RerunSpread | None = None,
) -> dict[str, ReportTable]:
    """Write one dataset's tables; return them by kind (a table that cannot be made is absent)."""
    ds, comp, metrics = inp.dataset, inp.comparison, inp.metrics
    tables: dict[str, ReportTable] = {}
    baseline = comp.get("threshold_baseline") or metrics.get("threshold_baseline")
    tables["models"] = _write(
        models_table(res, baseline), tab_dir, f"{ds}_models",
        models_caption(title, label, res, bool(baseline)),
    )  # fmt: skip
    if res.other_models:
        diff = difference_table(res, "models", res.other_models)
        if not diff.data.empty:
            tables["vs_reference"] = _write(
                diff, tab_dir, f"{ds}_vs_reference", differences_caption(title, res)
            )
    if spread is not None:
        tables["rerun_spread"] = _write(
            spread_table(res, spread), tab_dir, f"{ds}_rerun_spread",
            spread_caption(title, spread),
        )  # fmt: skip
    if res.ablations and res.ablation_reference in res.variants:
        tables["ablations"] = _write(
            ablation_table(res), tab_dir, f"{ds}_ablations", ablations_caption(title, res)
        )
    nsd = nsd_label(comp, metrics)
    surface = surface_table(res, nsd)
    if surface is None:
        notes.append(
            f"{ds}: the comparison has no `hd95_monai` / `nsd` (per-case tables from an older "
            "evaluation); no surface-metric conventions table."
        )
    else:
        tables["surface_metrics"] = _write(
            surface, tab_dir, f"{ds}_surface_metrics", surface_caption(title, res, nsd)
        )
    per_class = per_class_table(ds, metrics)
    caption = per_class_caption(title, res.reference, label)
    write_table(per_class, tab_dir, f"{ds}_per_class", caption)
    tables["per_class"] = ReportTable(
        f"{ds}_per_class", caption, per_class, display_cells(per_class, PER_CLASS_HEADERS)
    )
    published = published_table(ds)
    if published is not None:
        synthetic = metrics.get("data_source") == "synthetic"
        tables["published"] = _write(
            published, tab_dir, f"{ds}_published", published_caption(title, label, synthetic)
        )
    return tables


def _protocol(inp: DatasetInputs, res: Results, notes: list[str]) -> Protocol:
    """How the reference model's first seed was trained and evaluated."""
    metrics, run = inp.metrics, inp.reference_run
    train_info = None
    if run is not None and run.train_info.is_file():
        train_info = optional_json(run.train_info, notes, f"{inp.dataset} train.json")
    counts = metrics.get("empty_mask_cases") or {}
    mm = metrics.get("hd95_mm")
    return Protocol(
        n_cases=metrics.get("n_cases", "?"),
        study=study_text(res),
        split=split_text(inp.comparison.get("dataset_info")),
        run=f"{res.reference}, seed {run.seed}" if run is not None else res.reference,
        selection=selection_text(metrics.get("model_selection"), train_info),
        training=training_text(train_info),
        machine=machine_text(train_info),
        empty_policy=str(metrics.get("empty_policy", "published")),
        empty_counts={k: counts.get(k, 0) for k in ("gt_empty", "pred_empty", "both_empty")},
        hd95_mm=mm if isinstance(mm, (int, float)) else None,
        nsd_tolerance=nsd_label(inp.comparison, metrics),
    )


def _dataset_report(
    inp: DatasetInputs,
    cfg: ReportConfig,
    out_dir: Path,
    notes: list[str],
    spread: RerunSpread | None = None,
) -> DatasetReport:
    """One dataset's tables and figures written, and its part of the data model."""
    ds = inp.dataset
    res = Results.from_comparison(inp.comparison, inp.models, inp.ablations)
    title = TITLES.get(ds, ds)
    source = inp.metrics.get("data_source")
    label = data_label(source)
    tables = _dataset_tables(inp, res, title, label, out_dir / "tables", notes, spread)
    settings = FigureSettings(out_dir, title, label, cfg.dpi, cfg.max_qualitative)
    figures, curves = dataset_figures(inp, res, settings, notes)
    baseline = inp.comparison.get("threshold_baseline") or inp.metrics.get("threshold_baseline")
    return DatasetReport(
        name=ds,
        title=title,
        data_source=source,
        data_label=label,
        results=res,
        sampling=sampling(inp.comparison, res, spread),
        tables=tables,
        figures=figures,
        curves=curves,
        protocol=_protocol(inp, res, notes),
        baseline=baseline or None,
        published_note=PUBLISHED_NOTES.get(ds),
        comparison=inp.comparison,
        metrics=inp.metrics,
    )


def _experiments(
    repo_dir: Path,
    datasets: list[str],
    metrics_dir: Path,
    params_path: Path,
    tab_dir: Path,
    notes: list[str],
) -> tuple[ReportTable, int]:
    """Write the experiment comparison table; return it and the ``dvc exp`` runs found."""
    exps = collect_experiments(repo_dir, datasets, metrics_dir, params_path, notes)
    df, headers, deltas = experiments_table(comparison_rows(exps, datasets), datasets)
    write_table(df, tab_dir, "experiments", EXPERIMENTS_CAPTION, signed_cols=deltas)
    shown = display_cells(df, headers, signed_cols=deltas)
    n_exp = sum(e.kind == "experiment" for e in exps)
    return ReportTable("experiments", EXPERIMENTS_CAPTION, df, shown), n_exp


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
    DVCLive curves and ``qualitative.npz``; and, under ``repo_dir``, the measured rerun
    spread (:data:`SPREAD_FILE`, shown when it was measured on this configuration). All
    optional; a missing one adds a note.

    Args:
        datasets: Dataset names (``"synapse"``, ``"acdc"``) in report order.
        root: The study root (``metrics/``, ``compare/``, ``models/``, ``dvclive/``,
            ``eval/``).
        params_path: ``params.yaml``; its ``report`` section configures the report, and a
            relative ``report.template`` is taken from its folder.
        out_dir: Output folder (``reports``).
        repo_dir: Git repository root, for the experiment comparison (read with ``git``
            only; never ``dvc``, whose lock the running stage holds).

    Returns:
        Path of ``report.md``.

    Raises:
        ValueError: No datasets, or an invalid ``report`` params section, template, metrics
            file or comparison file.
        FileNotFoundError: A dataset's metrics file or comparison, or the template, is missing.
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
    template = load_template(template_path(cfg.template, params_path.parent))  # before drawing

    inputs = [load_inputs(ds, root, notes) for ds in datasets]
    spreads = [load_spread(repo / SPREAD_FILE, params, ds) for ds in datasets]
    reports = tuple(
        _dataset_report(inp, cfg, out_dir, notes, spread)
        for inp, spread in zip(inputs, spreads, strict=True)
    )
    experiments, n_exp = _experiments(
        repo, datasets, root / "metrics", params_path, out_dir / "tables", notes
    )
    report = Report(cfg.title, reports, experiments, n_exp, tuple(notes))
    path = out_dir / "report.md"
    write_text(path, render(template, report))
    return path


__all__ = ["SPREAD_FILE", "ReportConfig", "build_report", "case_dice"]
