"""Writing a phantom dataset by name: the entry point of the ``phantoms`` stage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtunet.data.synthetic.acdc_cine import write_acdc_phantoms
from mtunet.data.synthetic.config import AcdcPhantomConfig, SynapsePhantomConfig, phantom_config
from mtunet.data.synthetic.synapse_ct import write_synapse_phantoms


def write_phantoms(
    name: str,
    cfg: SynapsePhantomConfig | AcdcPhantomConfig | Mapping[str, Any] | None,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Write the synthetic raw dataset ``name`` (``"synapse"`` / ``"acdc"``) to ``out_dir``.

    Args:
        name: Dataset.
        cfg: Its phantom config (or a mapping / None for :func:`phantom_config`).
        out_dir: Root of the raw layout (e.g. ``data/raw/synapse``).

    Returns:
        The summary also written to ``out_dir/phantoms.json`` (ids per split, shapes,
        spacings).
    """
    if cfg is None or isinstance(cfg, Mapping):
        cfg = phantom_config(name, cfg)
    if name == "synapse" and isinstance(cfg, SynapsePhantomConfig):
        return write_synapse_phantoms(cfg, out_dir)
    if name == "acdc" and isinstance(cfg, AcdcPhantomConfig):
        return write_acdc_phantoms(cfg, out_dir)
    raise ValueError(f"dataset: {name!r} does not match config {type(cfg).__name__}")
