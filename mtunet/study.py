"""The study's runs: which models, ablations and seeds are trained, and where each run lives.

``params.yaml``'s ``study`` section::

    study:
      models: [mtunet, unet]      # the first is the reference every comparison is made against
      seeds: [1234]               # each (dataset, model, seed) is one training run
      ablations:                  # named overrides of the `model` section, trained as MT-UNet
        no_gaussian: {gaussian: false}

Every run is one DVC stage (``dvc.yaml`` builds them with ``matrix``), so adding a seed, a
model or an ablation trains only the new runs. A run's files::

    models/<ds>/<variant>/seed<k>/    model.pt, last.pt, train.json
    dvclive/<ds>/<variant>/seed<k>/   training curves
    eval/<ds>/<variant>/seed<k>/      metrics.json, per_case.csv, qualitative.npz

where ``<variant>`` is a model name or an ablation name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtunet.model.config import MTUNetConfig
from mtunet.model.registry import SPEC_KEYS, ModelSpec

# The paper's ablations of the Mixed Transformer Module (configs/ablation_cpu.yaml, paper.yaml).
PAPER_ABLATIONS: dict[str, dict[str, Any]] = {
    "no_gaussian": {"gaussian": False},
    "no_external_attention": {"external_attention": False},
    "global_attention": {"attention": "global"},
    "win_size_2": {"win_size": 2},
    "win_size_7": {"win_size": 7},
}
_NAME_RE = re.compile(r"^[A-Za-z_][\w.:-]*$")


@dataclass(frozen=True)
class StudyConfig:
    """The ``study`` section of ``params.yaml``.

    Attributes:
        models: Model names (``mtunet``, ``unet``, ``attention_unet`` or
            ``"package.module:factory"``); the first is the reference of every comparison.
        seeds: Training seeds; every model and ablation is trained once per seed.
        ablations: Ablation name -> overrides of the ``model`` section (MT-UNet keys only).
        confidence: Level of every confidence interval.
        n_bootstrap: Bootstrap resamples of an interval over test cases, where the method
            chosen for its number of cases is a bootstrap.
        bootstrap_seed: Seed of the bootstrap resampling and of the coverage simulation.
        coverage_studies: Simulated studies per scenario behind each interval's coverage
            (:func:`mtunet.report.choice.coverage_at`).
        coverage_resamples: Bootstrap resamples per simulated interval there.
    """

    models: tuple[str, ...] = ("mtunet", "unet")
    seeds: tuple[int, ...] = (1234,)
    ablations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    confidence: float = 0.95
    n_bootstrap: int = 10_000
    bootstrap_seed: int = 0
    coverage_studies: int = 2000
    coverage_resamples: int = 2000

    def __post_init__(self) -> None:
        models = tuple(self.models)
        if not models:
            raise ValueError("study.models: list at least one model")
        if len(set(models)) != len(models):
            raise ValueError(f"study.models: names repeat in {list(models)}")
        for name in models:
            ModelSpec(name)  # a clear error for an unknown name
        seeds = tuple(self.seeds)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ValueError(f"study.seeds: expected a non-empty list of integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"study.seeds: seeds must be distinct and >= 0, got {list(seeds)}")
        ablations = dict(self.ablations or {})
        for name, overrides in ablations.items():
            where = f"study.ablations.{name}"
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise ValueError(f"study.ablations: {name!r} is not a usable run name")
            if name in models:
                raise ValueError(f"{where}: the name is also a model in study.models")
            if not isinstance(overrides, Mapping) or not overrides:
                raise ValueError(f"{where}: expected a non-empty mapping of model keys")
            bad = sorted(set(overrides) & set(SPEC_KEYS))
            if bad:
                raise ValueError(f"{where}: an ablation changes MT-UNet, not {bad}")
            try:
                MTUNetConfig.from_dict(dict(overrides), where)
            except ValueError as exc:
                raise ValueError(str(exc)) from exc
        if ablations and "mtunet" not in models:
            raise ValueError("study.ablations: ablations vary MT-UNet; add mtunet to study.models")
        if not 0 < self.confidence < 1:
            raise ValueError(f"study.confidence: must be in (0, 1), got {self.confidence}")
        if self.n_bootstrap < 100:
            raise ValueError(f"study.n_bootstrap: must be >= 100, got {self.n_bootstrap}")
        for key in ("coverage_studies", "coverage_resamples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 100:
                raise ValueError(f"study.{key}: expected an integer >= 100, got {value!r}")
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "ablations", {k: dict(v) for k, v in ablations.items()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> StudyConfig:
        """From ``params.yaml``'s ``study`` section (missing keys take the defaults)."""
        data = dict(data or {})
        unknown = sorted(set(data) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise ValueError(f"study: unknown key(s) {unknown}")
        if "models" in data:
            data["models"] = tuple(data["models"] or ())
        if "seeds" in data:
            data["seeds"] = tuple(data["seeds"] or ())
        return cls(**data)

    @property
    def reference(self) -> str:
        """The model every other model and every ablation is compared with."""
        return self.models[0]

    @property
    def variants(self) -> tuple[str, ...]:
        """Models, then ablations: every name a run can have."""
        return (*self.models, *self.ablations)

    def kind(self, variant: str) -> Literal["model", "ablation"]:
        """Whether ``variant`` is a model or an ablation; ValueError for neither."""
        if variant in self.models:
            return "model"
        if variant in self.ablations:
            return "ablation"
        raise ValueError(
            f"{variant!r} is neither in study.models {list(self.models)} nor in "
            f"study.ablations {list(self.ablations)}"
        )

    def spec(self, model_section: Mapping[str, Any] | None, variant: str) -> ModelSpec:
        """The network of ``variant``: the ``model`` section, with the ablation's overrides."""
        section = dict(model_section or {})
        if self.kind(variant) == "ablation":
            section.update(self.ablations[variant])
            return ModelSpec.from_params(section, name="mtunet")
        return ModelSpec.from_params(section, name=variant)


@dataclass(frozen=True)
class RunPaths:
    """The files of one training run, relative to the study root."""

    dataset: str
    variant: str
    seed: int
    root: Path = Path(".")

    @property
    def _rel(self) -> Path:
        return Path(self.dataset) / self.variant / f"seed{self.seed}"

    @property
    def model_dir(self) -> Path:
        return self.root / "models" / self._rel

    @property
    def checkpoint(self) -> Path:
        return self.model_dir / "model.pt"

    @property
    def train_info(self) -> Path:
        return self.model_dir / "train.json"

    @property
    def live_dir(self) -> Path:
        return self.root / "dvclive" / self._rel

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval" / self._rel

    @property
    def metrics(self) -> Path:
        return self.eval_dir / "metrics.json"

    @property
    def per_case(self) -> Path:
        return self.eval_dir / "per_case.csv"


def study_runs(study: StudyConfig, dataset: str, root: Path = Path(".")) -> list[RunPaths]:
    """Every run of one dataset, models first, in ``study`` order, seeds innermost."""
    return [RunPaths(dataset, v, s, root) for v in study.variants for s in study.seeds]


def parse_seed(text: str, study: StudyConfig | None = None) -> int:
    """A seed from the command line, checked against ``study.seeds`` when given."""
    try:
        seed = int(text)
    except ValueError:
        raise ValueError(f"seed: expected an integer, got {text!r}") from None
    if study is not None and seed not in study.seeds:
        raise ValueError(f"seed {seed} is not in study.seeds {list(study.seeds)}")
    return seed


def describe(variant: str, study: StudyConfig) -> str:
    """How the report names a run: the model name, or the ablation and what it changes."""
    if study.kind(variant) == "model":
        return variant
    changes = ", ".join(f"{k}={v}" for k, v in sorted(study.ablations[variant].items()))
    return f"{variant} ({changes})"
