"""Segmentation metrics as the published evaluation computes them, bit-identical to medpy.

The package, one concern per module:

* :mod:`~mtunet.metrics.surface`: surface voxels and directed surface distances of two masks
  (medpy's definitions, computed on crops and with a KD-tree: why that is exact is told
  there), and the HD95 conventions and surface Dice built from them;
* :mod:`~mtunet.metrics.binary`: one pair of binary masks: :func:`dice`, :func:`hd95`
  (medpy), :func:`hd95_monai`, :func:`surface_dice`;
* :mod:`~mtunet.metrics.cases`: :func:`case_metrics`, every foreground class of one case with
  the published empty-mask conventions;
* :mod:`~mtunet.metrics.summary`: :func:`summarize`, the metrics JSON from the per-case table.
"""

from __future__ import annotations

from mtunet.metrics.binary import dice, hd95, hd95_monai, surface_dice
from mtunet.metrics.cases import CONVENTIONS, EMPTY_POLICIES, EmptyPolicy, case_metrics
from mtunet.metrics.summary import summarize

__all__ = [
    "CONVENTIONS",
    "EMPTY_POLICIES",
    "EmptyPolicy",
    "case_metrics",
    "dice",
    "hd95",
    "hd95_monai",
    "summarize",
    "surface_dice",
]
