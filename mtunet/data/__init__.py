"""Data: raw Synapse / ACDC (or the published preprocessed releases, or synthetic phantoms)
to 2-D training slices, 3-D test volumes and ``dataset.json``; PyTorch datasets over them.

Public API:

- ``preprocess(name, cfg, raw_dir, out_dir) -> dict``: ``name`` ``"synapse"`` or ``"acdc"``,
  ``cfg`` a :class:`SynapseConfig` / :class:`AcdcConfig` (or a mapping / None, built with
  :func:`preprocess_config`); returns the manifest written to ``out_dir/dataset.json``.
- ``preprocess_config(name, d) -> SynapseConfig | AcdcConfig``.
- ``load_manifest(path_or_dir) -> Manifest``; ``SliceDataset``; ``VolumeDataset``;
  ``normalize(volume, preprocessing) -> float32``.
- Submodules: :mod:`mtunet.data.nifti` (NIfTI read / write-back),
  :mod:`mtunet.data.synthetic` (phantoms, threshold baseline),
  :mod:`mtunet.data.transforms` (augmentation).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtunet.config import from_dict_for
from mtunet.data.acdc import AcdcConfig, preprocess_acdc
from mtunet.data.common import ACDC_CLASSES, SYNAPSE_CLASSES, normalize, read_slice, read_volume
from mtunet.data.manifest import Manifest, load_manifest
from mtunet.data.synapse import SynapseConfig, preprocess_synapse

if TYPE_CHECKING:
    from mtunet.data.datasets import SliceDataset, VolumeDataset

DATASETS = ("synapse", "acdc")

#: Names imported on first use: they need torch, which the phantoms and preprocess stages do
#: not (importing it costs those stages about 2 s each).
_LAZY = {"SliceDataset": "mtunet.data.datasets", "VolumeDataset": "mtunet.data.datasets"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def preprocess_config(name: str, d: Mapping[str, Any] | None = None) -> SynapseConfig | AcdcConfig:
    """The preprocessing config of dataset ``name`` from a mapping (``params.yaml``).

    Raises:
        ValueError: Unknown dataset, unknown key or wrong type (naming ``preprocess.key``).
    """
    return from_dict_for({"synapse": SynapseConfig, "acdc": AcdcConfig}, name, d, "preprocess")


def preprocess(
    name: str,
    cfg: SynapseConfig | AcdcConfig | Mapping[str, Any] | None,
    raw_dir: str | Path,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Build the dataset folder ``out_dir`` (slices, volumes, lists, dataset.json).

    Args:
        name: ``"synapse"`` or ``"acdc"``.
        cfg: Its config, or a mapping / None (defaults).
        raw_dir: Raw NIfTI release (or synthetic phantoms), or a preprocessed release.
        out_dir: Output folder; ``dataset.json`` is written last.

    Returns:
        The manifest dict (the content of ``out_dir/dataset.json``).
    """
    if cfg is None or isinstance(cfg, Mapping):
        cfg = preprocess_config(name, cfg)
    if name == "synapse" and isinstance(cfg, SynapseConfig):
        return preprocess_synapse(cfg, raw_dir, out_dir)
    if name == "acdc" and isinstance(cfg, AcdcConfig):
        return preprocess_acdc(cfg, raw_dir, out_dir)
    raise ValueError(f"dataset: {name!r} does not match config {type(cfg).__name__}")


__all__ = [
    "ACDC_CLASSES",
    "DATASETS",
    "SYNAPSE_CLASSES",
    "AcdcConfig",
    "Manifest",
    "SliceDataset",
    "SynapseConfig",
    "VolumeDataset",
    "load_manifest",
    "normalize",
    "preprocess",
    "preprocess_config",
    "read_slice",
    "read_volume",
]
