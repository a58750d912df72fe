"""What each run of the study asks of the cluster: the ``resources`` section of params.yaml.

::

    resources:
      train: {gpus: 1, cpus: 4}     # each training run (train@, train_ablation@)
      evaluate: {gpus: 1, cpus: 2}  # each evaluation (evaluate@, evaluate_ablation@)
      other: {gpus: 0, cpus: 1}     # phantoms@, preprocess@, compare@, report

``gpus`` may be a fraction of one GPU (0.5 packs two runs on a GPU) or a whole number;
``cpus`` is both what Ray reserves and the run's torch threads (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``; ``train.threads`` and ``evaluate.threads``, where set, override them in
the run) and, through ``MTUNET_CPUS``, what ``train.num_workers: auto`` divides
(:meth:`mtunet.training.TrainConfig.loader_workers`). On a cluster without GPUs every run
asks for none and trains on the CPU.

The section is top-level because only ``mtunet study run`` and ``mtunet study plan`` read
it: no stage of ``dvc.yaml`` lists it, so changing it reruns nothing. Under ``study`` it
would rerun ``compare@`` and ``report``, which depend on the whole ``study`` section, and
under ``train`` every training. Threads do change a CPU run's last bits, which is why the
quick default fixes them in ``train.threads`` (a number-deciding parameter): then a run on
the cluster computes what a serial ``dvc repro`` does, whatever ``cpus`` says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mtunet.config import check, from_dict, to_dict
from mtunet.training.config import CPUS_ENV

Kind = Literal["train", "evaluate", "other"]

#: The ``dvc.yaml`` stages whose runs use a GPU, by the name before ``@``.
GPU_STAGES: dict[str, Kind] = {
    "train": "train",
    "train_ablation": "train",
    "evaluate": "evaluate",
    "evaluate_ablation": "evaluate",
}


def stage_kind(name: str) -> Kind:
    """``"train"``, ``"evaluate"`` or ``"other"`` for a stage name such as ``train@acdc-unet-1``."""
    return GPU_STAGES.get(name.split("@", 1)[0], "other")


@dataclass(frozen=True)
class RunResources:
    """What one run reserves.

    Attributes:
        gpus: GPUs per run: a fraction in (0, 1] shares one GPU, a whole number takes that
            many; 0 for none.
        cpus: CPUs per run (at least 1): its torch threads and its loader's share.
    """

    gpus: float = 0.0
    cpus: int = 1

    def __post_init__(self) -> None:
        gpus = self.gpus
        check(
            math.isfinite(gpus) and gpus >= 0 and (gpus <= 1 or float(gpus).is_integer()),
            "gpus",
            f"must be 0, a fraction in (0, 1] or a whole number, got {gpus}",
        )
        check(self.cpus >= 1, "cpus", f"must be >= 1, got {self.cpus}")

    def environment(self) -> dict[str, str]:
        """The variables that give the run its threads and tell it its CPUs."""
        threads = str(self.cpus)
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, CPUS_ENV: threads}


@dataclass(frozen=True)
class ResourcesConfig:
    """The ``resources`` section (see the module docstring)."""

    train: RunResources = field(default_factory=lambda: RunResources(gpus=1.0, cpus=4))
    evaluate: RunResources = field(default_factory=lambda: RunResources(gpus=1.0, cpus=2))
    other: RunResources = field(default_factory=lambda: RunResources(gpus=0.0, cpus=1))

    def __post_init__(self) -> None:
        check(
            self.other.gpus == 0,
            "resources.other.gpus",
            f"data, comparison and report stages use no GPU; got {self.other.gpus}",
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ResourcesConfig:
        """From params.yaml's ``resources`` section (missing keys keep the defaults).

        Raises:
            ValueError: Naming ``resources.<kind>.<key>`` for an unknown key or a bad value.
        """
        if data is not None and not isinstance(data, Mapping):
            raise ValueError(f"resources: expected a mapping, got {data!r}")
        data = dict(data or {})
        unknown = sorted(set(data) - {"train", "evaluate", "other"})
        if unknown:
            raise ValueError(
                f"resources: unknown key(s) {unknown}; valid keys are evaluate, other, train"
            )
        defaults = cls()
        kinds: dict[str, RunResources] = {}
        for kind, value in data.items():
            where = f"resources.{kind}"
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: expected a mapping such as {{gpus: 1, cpus: 4}}")
            base = to_dict(getattr(defaults, kind))
            try:
                kinds[kind] = from_dict(RunResources, {**base, **value}, where)
            except ValueError as exc:
                text = str(exc)
                raise ValueError(text if text.startswith(where) else f"{where}.{text}") from exc
        return replace(defaults, **kinds)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ResourcesConfig:
        """The ``resources`` section of a loaded params.yaml (all defaults when absent)."""
        return cls.from_dict(params.get("resources"))

    def for_stage(self, name: str, cluster_gpus: float) -> RunResources:
        """What stage ``name`` asks for on a cluster with ``cluster_gpus`` GPUs in all.

        A cluster without GPUs runs everything on the CPU: the GPU stages then ask for none.
        """
        res: RunResources = getattr(self, stage_kind(name))
        return res if cluster_gpus > 0 else replace(res, gpus=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as params.yaml writes it."""
        return {k: to_dict(getattr(self, k)) for k in ("train", "evaluate", "other")}
