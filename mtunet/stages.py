"""The study's stages: where each one reads and writes, and which params section it uses.

One function per DVC stage. ``pipeline/<stage>.py`` and the ``mtunet`` console command both
call these, so the path layout below exists exactly once::

    data/raw/<ds>/            phantoms in the raw release layout (stage ``phantoms``)
    data/processed/<ds>/      slices, test volumes, dataset.json (stage ``preprocess``)
    models/<ds>/<variant>/seed<k>/   model.pt, last.pt, train.json (stage ``train``)
    dvclive/<ds>/<variant>/seed<k>/  training curves (stage ``train``)
    eval/<ds>/<variant>/seed<k>/     metrics.json, per_case.csv, qualitative.npz (``evaluate``)
    compare/<ds>/                    comparison.json, per_case.csv (stage ``compare``)
    metrics/<ds>.json                the DVC metrics file (stage ``compare``)
    reports/                         report.md, figures, tables (stage ``report``)

``<variant>`` is a model of ``study.models`` or an ablation of ``study.ablations``
(:mod:`mtunet.study`). ``params.yaml`` sections: ``datasets.<ds>`` (``raw_dir``,
``phantoms``, ``preprocess``), ``study``, ``model``, ``train``, ``evaluate``, ``report``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtunet.config import load_params, train_section

if TYPE_CHECKING:  # imported where used: phantoms and preprocess must not depend on models
    from mtunet.study import RunPaths, StudyConfig

DATASETS = ("synapse", "acdc")


@dataclass(frozen=True)
class StudyPaths:
    """Every path one dataset's stages read or write, relative to the study root."""

    dataset: str
    root: Path = Path(".")

    @property
    def phantoms(self) -> Path:
        return self.root / "data" / "raw" / self.dataset

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed" / self.dataset

    @property
    def manifest(self) -> Path:
        return self.processed / "dataset.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / f"{self.dataset}.json"

    @property
    def compare_dir(self) -> Path:
        return self.root / "compare" / self.dataset


def dataset_params(params: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The ``datasets.<dataset>`` section, with an error naming what is missing."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset!r}")
    section = (params.get("datasets") or {}).get(dataset)
    if not isinstance(section, dict):
        raise ValueError(f"params: section datasets.{dataset} is missing or not a mapping")
    return section


def raw_dir(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> Path:
    """Where ``preprocess`` reads: ``datasets.<ds>.raw_dir`` (phantoms by default)."""
    value = dataset_params(params, dataset).get("raw_dir")
    if not isinstance(value, str) or not value:
        raise ValueError(f"params: datasets.{dataset}.raw_dir must be a non-empty path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def run_phantoms(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> Path:
    """Stage ``phantoms``: write synthetic raw data for ``dataset`` under ``data/raw/<ds>``."""
    from mtunet.data.synthetic import phantom_config, write_phantoms

    cfg = phantom_config(dataset, dataset_params(params, dataset).get("phantoms"))
    out = StudyPaths(dataset, root).phantoms
    write_phantoms(dataset, cfg, out)
    return out


def run_preprocess(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> Path:
    """Stage ``preprocess``: raw (or a preprocessed release) to ``data/processed/<ds>``."""
    from mtunet.data import preprocess, preprocess_config

    section = dataset_params(params, dataset)
    cfg = preprocess_config(dataset, section.get("preprocess"))
    paths = StudyPaths(dataset, root)
    preprocess(dataset, cfg, raw_dir(params, dataset, root), paths.processed)
    return paths.manifest


def study_config(params: dict[str, Any]) -> StudyConfig:
    """The ``study`` section: models, seeds, ablations and interval settings."""
    from mtunet.study import StudyConfig

    return StudyConfig.from_dict(params.get("study"))


def _run(
    params: dict[str, Any], dataset: str, variant: str | None, seed: int | str | None, root: Path
) -> tuple[StudyConfig, RunPaths]:
    from mtunet.study import RunPaths, parse_seed

    dataset_params(params, dataset)
    study = study_config(params)
    variant = study.reference if variant is None else variant
    study.kind(variant)
    seed = study.seeds[0] if seed is None else parse_seed(str(seed), study)
    return study, RunPaths(dataset, variant, seed, root)


def run_train(
    params: dict[str, Any],
    dataset: str,
    variant: str | None = None,
    seed: int | str | None = None,
    root: Path = Path("."),
) -> dict[str, Any]:
    """Stage ``train@<ds>-<variant>-<seed>``: one model (or ablation) with one seed.

    ``variant`` defaults to the study's reference model and ``seed`` to its first seed.
    Writes ``models/<ds>/<variant>/seed<k>`` and ``dvclive/<ds>/<variant>/seed<k>``.
    """
    from mtunet.training import TrainConfig, train

    study, run = _run(params, dataset, variant, seed, root)
    section = train_section(params, dataset)
    if "seed" in section:
        raise ValueError(
            "train.seed: the study's training seeds are study.seeds (one run per seed); "
            "remove train.seed"
        )
    train_cfg = TrainConfig.from_dict({**section, "seed": run.seed}, "train")
    spec = study.spec(params.get("model"), run.variant)
    manifest = StudyPaths(dataset, root).manifest
    return train(train_cfg, spec, manifest, run.model_dir, run.live_dir)


def run_evaluate(
    params: dict[str, Any],
    dataset: str,
    variant: str | None = None,
    seed: int | str | None = None,
    root: Path = Path("."),
) -> dict[str, Any]:
    """Stage ``evaluate@<ds>-<variant>-<seed>``: Dice, HD95 and surface Dice on the test
    split; writes ``eval/<ds>/<variant>/seed<k>`` (metrics.json, per_case.csv, qualitative)."""
    from mtunet.evaluation import EvalConfig, evaluate

    _, run = _run(params, dataset, variant, seed, root)
    cfg = EvalConfig.from_dict(params.get("evaluate"), "evaluate")
    # Scored once per dataset by the compare stage, not once per run.
    cfg = dataclasses.replace(cfg, threshold_baseline=False)
    manifest = StudyPaths(dataset, root).manifest
    return evaluate(run.checkpoint, manifest, cfg, run.metrics, run.per_case, run.eval_dir)


def run_compare(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``compare@<ds>``: every run's scores -> intervals and paired tests; writes
    ``compare/<ds>`` and the DVC metrics file ``metrics/<ds>.json``. The intervals and tests
    count patients where the split lists them (ACDC: a patient's ED and ES volumes are not
    independent), else cases."""
    from mtunet.comparison import run_comparison
    from mtunet.data import load_manifest
    from mtunet.data.manifest import case_units
    from mtunet.evaluation import EvalConfig, threshold_baseline

    dataset_params(params, dataset)
    study = study_config(params)
    paths = StudyPaths(dataset, root)
    manifest = load_manifest(paths.manifest)
    cfg = EvalConfig.from_dict(params.get("evaluate"), "evaluate")
    baseline = threshold_baseline(manifest, cfg.split)
    info = {"splits": dict(manifest.splits), "class_names": list(manifest.class_names)}
    return run_comparison(
        study,
        dataset,
        root,
        paths.compare_dir,
        paths.metrics,
        baseline,
        info,
        nsd_tolerance=cfg.nsd_tolerance,
        units=case_units(manifest.splits.get(cfg.split) or {}),
    )


def run_report(params: dict[str, Any], root: Path = Path(".")) -> Path:
    """Stage ``report``: ``reports/report.md`` with the comparison, ablation and published
    tables, plots and the experiment comparison."""
    from mtunet.report.report import build_report

    datasets = [d for d in DATASETS if d in (params.get("datasets") or {})]
    return build_report(
        datasets=datasets,
        root=root,
        params_path=root / "params.yaml",
        out_dir=root / "reports",
        repo_dir=root,
    )


def load(params_path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read the study's ``params.yaml``."""
    return load_params(params_path)
