"""Per-case metrics of a label map with the published empty-mask conventions.

:func:`case_metrics` scores every foreground class of one predicted volume against its ground
truth: Dice and HD95 as the published evaluation (TransUNet's ``calculate_metric_percase``),
with MONAI's HD95 and the normalised surface Dice from the same surface distances.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from mtunet.metrics.surface import (
    check_tolerance,
    max_directed_hd95,
    normalize_spacing,
    normalized_surface_dice,
    pooled_hd95,
    surface_distances,
)

# How a class with an empty mask is scored, and which masks of a row were empty.
EmptyPolicy = Literal["published", "nan"]
EMPTY_POLICIES: tuple[str, ...] = ("published", "nan")
CONVENTIONS: tuple[str, ...] = ("both", "gt_empty", "pred_empty", "both_empty")


def _empty_values(convention: str, policy: str) -> tuple[float, float]:
    """(dice, hd95) for a class where at least one mask is empty."""
    if policy == "published":
        # TransUNet's calculate_metric_percase: pred>0 & gt==0 -> (1, 0); otherwise (0, 0).
        return (1.0, 0.0) if convention == "gt_empty" else (0.0, 0.0)
    # "nan": HD95 is undefined when a mask is empty; Dice's formula gives 0 when exactly one
    # mask is empty and is undefined (NaN) when both are.
    return (math.nan, math.nan) if convention == "both_empty" else (0.0, math.nan)


def case_metrics(
    pred: Any,
    gt: Any,
    num_classes: int,
    spacing: Any = None,
    empty_policy: str = "published",
    nsd_tolerance: float = 2.0,
) -> list[dict[str, Any]]:
    """Dice and HD95 of one case for every foreground class, with the published conventions.

    Besides the published metrics each row carries MONAI's HD95 convention
    (:func:`~mtunet.metrics.binary.hd95_monai`) and the normalised surface Dice
    (:func:`~mtunet.metrics.binary.surface_dice`), computed from the same surface distances
    (no extra distance transform).

    Args:
        pred: Predicted label map, int array (Z, H, W) with values in [0, num_classes).
        gt: Ground-truth label map, same shape.
        num_classes: Number of classes including background (class 0 is not scored).
        spacing: (z, y, x) voxel spacing in mm, or None (then ``hd95_mm`` is None).
        empty_policy: ``"published"``: prediction non-empty and ground truth empty gives
            (Dice 1, HD95 0), an empty prediction gives (0, 0). ``"nan"``: HD95 is NaN when
            a mask is empty, Dice is 0 when exactly one is empty and NaN when both are.
            In both policies a class with an empty mask gets ``nsd`` equal to its ``dice``
            and ``hd95_monai`` / ``hd95_monai_mm`` equal to its ``hd95`` / ``hd95_mm`` (so
            under ``"nan"`` NSD is 0 for one empty mask and NaN for two, and HD95 is NaN,
            all as MONAI).
        nsd_tolerance: Tolerance of the surface Dice: in mm when ``spacing`` is given, else
            in voxels. Finite and >= 0. The default, 2 mm, is a common organ-agnostic choice
            (Nikolov et al. tune it per organ from inter-rater variation).

    Returns:
        One dict per class id 1..num_classes-1 with keys ``class_id``, ``dice`` (in [0, 1]),
        ``hd95`` (voxels), ``hd95_mm`` (mm or None), ``hd95_monai`` (voxels),
        ``hd95_monai_mm`` (mm or None), ``nsd`` (in [0, 1]) and ``convention`` (``"both"``,
        ``"gt_empty"``, ``"pred_empty"`` or ``"both_empty"``).

    Raises:
        ValueError: Bad shapes, classes, policy, spacing or tolerance.
    """
    if empty_policy not in EMPTY_POLICIES:
        raise ValueError(
            f"empty_policy: must be one of {list(EMPTY_POLICIES)}, got {empty_policy!r}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes: expected an integer, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes: must be >= 2 (background + one class), got {num_classes}")
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt: shapes differ ({p.shape} vs {g.shape})")
    for name, arr in (("pred", p), ("gt", g)):
        if arr.ndim == 0:
            raise ValueError(f"{name}: expected a label array, got a scalar")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name}: expected an integer label array, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(
                f"{name}: labels must lie in [0, {num_classes - 1}], got [{arr.min()}, {arr.max()}]"
            )
    sp = normalize_spacing(spacing, p.ndim)
    tol = check_tolerance(nsd_tolerance, "nsd_tolerance")
    # One pass per volume gives every class's bounding box.
    p_boxes = ndi.find_objects(p, max_label=num_classes - 1)
    g_boxes = ndi.find_objects(g, max_label=num_classes - 1)
    rows: list[dict[str, Any]] = []
    for k in range(1, num_classes):
        pb, gb = p_boxes[k - 1], g_boxes[k - 1]
        if pb is not None and gb is not None:
            a = p[pb] == k
            b = g[gb] == k
            # Dice as medpy's dc: the intersection can only lie in the boxes' overlap.
            inter_box = tuple(
                slice(max(x.start, y.start), min(x.stop, y.stop))
                for x, y in zip(pb, gb, strict=True)
            )
            inter = 0
            if all(s.start < s.stop for s in inter_box):
                inter = int(np.count_nonzero((p[inter_box] == k) & (g[inter_box] == k)))
            d = 2.0 * inter / float(int(np.count_nonzero(a)) + int(np.count_nonzero(b)))
            dists = surface_distances(a, pb, b, gb, [None] if sp is None else [None, sp])
            h = pooled_hd95(*dists[0])
            hm = max_directed_hd95(*dists[0])
            h_mm: float | None = pooled_hd95(*dists[1]) if sp is not None else None
            hm_mm: float | None = max_directed_hd95(*dists[1]) if sp is not None else None
            nsd = normalized_surface_dice(*dists[-1], tol)  # in mm when a spacing is given
            convention = "both"
        else:
            convention = (
                "gt_empty" if pb is not None else ("pred_empty" if gb is not None else "both_empty")
            )
            d, h = _empty_values(convention, empty_policy)
            h_mm = h if sp is not None else None
            hm, hm_mm, nsd = h, h_mm, d
        rows.append(
            {
                "class_id": k,
                "dice": d,
                "hd95": h,
                "hd95_mm": h_mm,
                "hd95_monai": hm,
                "hd95_monai_mm": hm_mm,
                "nsd": nsd,
                "convention": convention,
            }
        )
    return rows
