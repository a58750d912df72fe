"""Metrics of one pair of binary masks: Dice, HD95 (medpy's and MONAI's), surface Dice.

Dice and medpy's HD95 are bit-identical to ``medpy.metric.binary.dc`` and ``hd95`` (the
published evaluation); MONAI's HD95 and the normalised surface Dice agree with MONAI to
float32 precision. The distances come from :mod:`mtunet.metrics.surface`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mtunet.metrics.surface import (
    bbox,
    check_tolerance,
    max_directed_hd95,
    nonempty_boxes,
    normalize_spacing,
    normalized_surface_dice,
    pooled_hd95,
    surface_distances,
)


def _as_bool(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array with at least one dimension, got a scalar")
    return arr.astype(bool, copy=False)


def _check_pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays; ValueError when either is a scalar or the shapes differ."""
    a = _as_bool(pred, "pred")
    b = _as_bool(gt, "gt")
    if a.shape != b.shape:
        raise ValueError(f"pred and gt: shapes differ ({a.shape} vs {b.shape})")
    return a, b


def dice(pred: Any, gt: Any) -> float:
    """Dice coefficient of two binary masks, as ``medpy.metric.binary.dc``.

    Args:
        pred: Prediction mask, any shape; non-zero counts as foreground.
        gt: Ground-truth mask, same shape.

    Returns:
        ``2 |A and B| / (|A| + |B|)`` in [0, 1]; 1.0 when both are empty (as medpy).
    """
    a, b = _check_pair(pred, gt)
    inter = int(np.count_nonzero(a & b))
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2.0 * inter / float(total)


def hd95(pred: Any, gt: Any, spacing: Any = None) -> float:
    """medpy's HD95 (bit-identical to ``medpy.metric.binary.hd95``), computed fast.

    Args:
        pred: Prediction mask, any shape (e.g. (Z, H, W)); non-zero counts as foreground.
        gt: Ground-truth mask, same shape.
        spacing: Voxel spacing per axis (e.g. (z, y, x) in mm) or one number; None means
            unit spacing, i.e. HD95 in voxels as the published tables.

    Returns:
        The 95th percentile of the pooled surface distances in both directions.

    Raises:
        ValueError: Shapes differ, a mask is empty, or the spacing is invalid.
    """
    a, b = _check_pair(pred, gt)
    sp = normalize_spacing(spacing, a.ndim)
    box_a, box_b = nonempty_boxes(a, b)
    return pooled_hd95(*surface_distances(a[box_a], box_a, b[box_b], box_b, [sp])[0])


def hd95_monai(pred: Any, gt: Any, spacing: Any = None) -> float:
    """HD95 with MONAI's convention (``compute_hausdorff_distance(..., percentile=95)``).

    Same surfaces and surface distances as :func:`hd95` (MONAI's ``get_mask_edges`` is the
    same XOR with a one-iteration cross erosion, outside = background), but the 95th
    percentile is taken in each direction separately and the larger one is returned,
    instead of one percentile of both directions pooled: usually equal to or a little
    larger than medpy's value, much larger when one direction alone has far outliers.

    MONAI returns its distances as float32; this function keeps float64, so the two agree
    to float32 precision (relative ~1e-7), not bit for bit.

    Args:
        pred: Prediction mask, any shape; non-zero counts as foreground.
        gt: Ground-truth mask, same shape.
        spacing: Voxel spacing per axis or one number; None means unit spacing (voxels).

    Returns:
        ``max(P95(d(pred -> gt)), P95(d(gt -> pred)))``.

    Raises:
        ValueError: Shapes differ, a mask is empty, or the spacing is invalid. (MONAI
            1.6 returns NaN with ``percentile=95`` when either mask is empty: its distances
            to an empty surface are inf and ``torch.quantile`` of infs is NaN. As for
            :func:`hd95`, the caller decides, see
            :func:`~mtunet.metrics.cases.case_metrics`.)
    """
    a, b = _check_pair(pred, gt)
    sp = normalize_spacing(spacing, a.ndim)
    box_a, box_b = nonempty_boxes(a, b)
    d_ab, d_ba = surface_distances(a[box_a], box_a, b[box_b], box_b, [sp])[0]
    return max_directed_hd95(d_ab, d_ba)


def surface_dice(pred: Any, gt: Any, tolerance: float, spacing: Any = None) -> float:
    """Normalised surface Dice (Nikolov et al. 2021) as MONAI's ``compute_surface_dice``.

    The fraction of the surface voxels of both masks (the surfaces of :func:`hd95`) whose
    distance to the other mask's surface is at most ``tolerance``:
    ``(|{d(pred -> gt) <= tol}| + |{d(gt -> pred) <= tol}|) / (|S_pred| + |S_gt|)``.
    Each surface voxel counts once (MONAI's default ``use_subvoxels=False``, not the
    surface-area weighting of DeepMind's ``surface-distance`` package).

    A distance equal to the tolerance counts as within even when float64 rounding puts it
    an ulp above (distances up to ``tolerance * (1 + 1e-9)`` count). MONAI compares
    float32 distances with a float32 tolerance, which usually has the same effect on such
    ties; the two can only differ for a distance within float32 rounding (~1e-7 relative)
    of the tolerance that is not an exact tie.

    Args:
        pred: Prediction mask, any shape; non-zero counts as foreground.
        gt: Ground-truth mask, same shape.
        tolerance: Accepted deviation: in the units of ``spacing`` (mm) when given, else
            in voxels. Finite and >= 0.
        spacing: Voxel spacing per axis or one number; None means unit spacing.

    Returns:
        The surface Dice in [0, 1]. As MONAI: 0.0 when exactly one mask is empty (no
        surface voxel has a partner) and NaN when both are (0 / 0).

    Raises:
        ValueError: Shapes differ, or the tolerance or spacing is invalid.
    """
    a, b = _check_pair(pred, gt)
    sp = normalize_spacing(spacing, a.ndim)
    tol = check_tolerance(tolerance, "tolerance")
    box_a, box_b = bbox(a), bbox(b)
    if box_a is None or box_b is None:
        return math.nan if box_a is None and box_b is None else 0.0
    d_ab, d_ba = surface_distances(a[box_a], box_a, b[box_b], box_b, [sp])[0]
    return normalized_surface_dice(d_ab, d_ba, tol)
