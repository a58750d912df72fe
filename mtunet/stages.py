"""The study's stages: where each one reads and writes, and which params section it uses.

One function per DVC stage. ``pipeline/<stage>.py`` and the ``mtunet`` console command both
call these, so the path layout below exists exactly once::

    data/raw/<ds>/            phantoms in the raw release layout (stage ``phantoms``)
    data/processed/<ds>/      slices, test volumes, dataset.json (stage ``preprocess``)
    models/<ds>/              model.pt, last.pt, train.json (stage ``train``)
    dvclive/<ds>/             training curves (stage ``train``)
    metrics/<ds>.json         the DVC metrics file (stage ``evaluate``)
    eval/<ds>/                per_case.csv, qualitative.npz, predictions (stage ``evaluate``)
    reports/                  report.md, figures, tables (stage ``report``)

``params.yaml`` sections: ``datasets.<ds>`` (``raw_dir``, ``phantoms``, ``preprocess``),
``model``, ``train``, ``evaluate``, ``report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtunet.config import load_params

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
    def model_dir(self) -> Path:
        return self.root / "models" / self.dataset

    @property
    def checkpoint(self) -> Path:
        return self.model_dir / "model.pt"

    @property
    def live_dir(self) -> Path:
        return self.root / "dvclive" / self.dataset

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / f"{self.dataset}.json"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval" / self.dataset

    @property
    def per_case(self) -> Path:
        return self.eval_dir / "per_case.csv"


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


def run_train(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``train``: train MT-UNet on ``data/processed/<ds>``; writes ``models/<ds>``."""
    from mtunet.model import MTUNetConfig
    from mtunet.train import TrainConfig, train

    model_cfg = MTUNetConfig.from_dict(params.get("model"), "model")
    train_cfg = TrainConfig.from_dict(params.get("train"), "train")
    paths = StudyPaths(dataset, root)
    return train(train_cfg, model_cfg, paths.manifest, paths.model_dir, paths.live_dir)


def run_evaluate(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    """Stage ``evaluate``: Dice and HD95 on the test split; ``metrics/<ds>.json`` and ``eval/<ds>``."""
    from mtunet.inference import EvalConfig, evaluate

    cfg = EvalConfig.from_dict(params.get("evaluate"), "evaluate")
    paths = StudyPaths(dataset, root)
    return evaluate(
        paths.checkpoint, paths.manifest, cfg, paths.metrics, paths.per_case, paths.eval_dir
    )


def run_report(params: dict[str, Any], root: Path = Path(".")) -> Path:
    """Stage ``report``: ``reports/report.md`` with tables, plots and the experiment comparison."""
    from mtunet.report import build_report

    datasets = [d for d in DATASETS if d in (params.get("datasets") or {})]
    return build_report(
        datasets=datasets,
        metrics_dir=root / "metrics",
        eval_dir=root / "eval",
        live_dir=root / "dvclive",
        params_path=root / "params.yaml",
        out_dir=root / "reports",
        repo_dir=root,
    )


def load(params_path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read the study's ``params.yaml``."""
    return load_params(params_path)
