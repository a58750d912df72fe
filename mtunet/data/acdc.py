"""ACDC cine MRI to a dataset folder with ``dataset.json``, from whichever layout a copy holds.

Entry point: ``preprocess_acdc(cfg: AcdcConfig, raw_dir, out_dir) -> dict``. It picks the
reader; each layout is its own module, and what they share (the config and MT-UNet's split,
patient names, slice stacking and volume cutting) is :mod:`mtunet.data.acdc_common`, so this
module imports the readers and none of them imports it back:

- :mod:`mtunet.data.acdc_raw`: the challenge release (NIfTI, ``Info.cfg``);
- :mod:`mtunet.data.acdc_release`: MT-UNet's preprocessed release (``lists_ACDC/``);
- :mod:`mtunet.data.acdc_ssl4mis`: the SSL4MIS layout (``data/*.h5``).

``source: auto`` picks MT-UNet's release when ``lists_ACDC/`` exists, the SSL4MIS layout when
``data/`` holds its ``.h5`` files (or a ``*.list`` file or ``data/slices/`` is there), raw
data otherwise. Every layout gets validation volumes when it has validation patients, so
best-validation selection works. The names below that the readers define are re-exported
here, where callers have always imported them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtunet.data.acdc_common import (
    ACDC_ALL_PATIENTS,
    ACDC_MAX_ID,
    ACDC_TEST_PATIENTS,
    ACDC_VAL_PATIENTS,
    AcdcConfig,
    patient_name,
)
from mtunet.data.acdc_raw import INFO_FIELDS, find_patients, load_frame, preprocess_raw, read_info
from mtunet.data.acdc_release import index_release, is_release
from mtunet.data.acdc_ssl4mis import index_ssl4mis, is_ssl4mis

__all__ = [
    "ACDC_ALL_PATIENTS",
    "ACDC_MAX_ID",
    "ACDC_TEST_PATIENTS",
    "ACDC_VAL_PATIENTS",
    "INFO_FIELDS",
    "AcdcConfig",
    "detect_source",
    "find_patients",
    "load_frame",
    "patient_name",
    "preprocess_acdc",
    "preprocess_raw",
    "read_info",
]


def detect_source(raw_dir: Path) -> str:
    """The layout in ``raw_dir``: ``"release"``, ``"ssl4mis"`` or ``"raw"`` (module doc)."""
    if is_release(raw_dir):
        return "release"
    if is_ssl4mis(raw_dir):
        return "ssl4mis"
    return "raw"


def preprocess_acdc(cfg: AcdcConfig, raw_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Build the ACDC dataset folder ``out_dir`` from ``raw_dir``.

    Args:
        cfg: :class:`AcdcConfig`.
        raw_dir: Raw challenge folder, MT-UNet's release or the SSL4MIS layout.
        out_dir: Output folder; ``dataset.json`` is written there last.

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.

    Raises:
        ValueError: ``split: layout`` on raw data (it has no lists), besides the errors of
            each layout's reader.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    source = detect_source(raw_dir) if cfg.source == "auto" else cfg.source
    if source == "raw" and cfg.split == "layout":
        raise ValueError(
            f"preprocess.split: 'layout' needs a layout with its own split lists (ssl4mis), "
            f"but {raw_dir} is raw ACDC; use split: mtunet"
        )
    if source == "release":
        return index_release(cfg, raw_dir, out_dir)
    if source == "ssl4mis":
        return index_ssl4mis(cfg, raw_dir, out_dir)
    return preprocess_raw(cfg, raw_dir, out_dir)
