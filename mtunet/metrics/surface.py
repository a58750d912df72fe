"""Surface distances of two masks as medpy computes them, bit-identical, but fast.

The published code (TransUNet's ``calculate_metric_percase``, reused by MT-UNet) calls
``medpy.metric.binary.dc`` and ``medpy.metric.binary.hd95`` on the binary masks of each class.
medpy's HD95 is:

- surface = mask XOR binary_erosion(mask, 6-connected cross, one iteration), where voxels
  outside the array count as background (``border_value=0``);
- for every surface voxel of one mask, the distance to the nearest surface voxel of the other
  mask from an exact Euclidean distance transform (``scipy.ndimage.distance_transform_edt``,
  scaled by the voxel spacing when one is given);
- the 95th percentile (numpy's default linear interpolation) of BOTH directions pooled.

medpy runs the erosions and distance transforms over the whole volume (about 12 s per organ
of a 150 x 512 x 512 CT). This module gets the same float64 values much faster:

1. Both masks are cropped to the union of their bounding boxes. Outside that box both masks
   are zero, so (a) the erosion of a voxel on the box's edge sees background beyond the edge
   either way (erosion treats the outside of the array as background), hence the surfaces are
   identical, and (b) every surface voxel lies inside the box, so each surface voxel has the
   same nearest partner; scipy's feature transform only ever uses coordinate differences, so
   it makes the same choices on the crop and the distance values are identical.
2. When the box is large compared with the number of surface voxels (e.g. a few stray false
   positives far from the organ stretch the box over the whole volume), the nearest partners
   are found with a KD-tree (``scipy.spatial.cKDTree``) over the surface voxels instead of a
   distance transform over the box. Without spacing the distance is recomputed as
   ``sqrt(float(integer squared distance))``: the EDT's distance is also the correctly rounded
   square root of the same exact integer, so the values are identical whichever of several
   equally near partners either method picks. With a spacing the value is recomputed exactly
   as scipy does (integer offsets -> float64, times spacing, squared, summed over axes in
   order, square root); if two candidate partners are (nearly) equally near but round to
   different floats, which one the EDT picks cannot be predicted, so that direction falls back
   to the distance transform on the crop (still exact, only slower).

The two arrays of directed surface distances (:func:`surface_distances`) give every
distance-based metric of the package: medpy's HD95 (:func:`pooled_hd95`), MONAI's HD95 (the
larger of the two directed 95th percentiles instead of the pooled one,
:func:`max_directed_hd95`) and the normalised surface Dice (as MONAI's
``compute_surface_dice``, :func:`normalized_surface_dice`). MONAI's surfaces are medpy's; its
distances are float32, so those two agree with MONAI to float32 precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from mtunet.fpenv import ieee_denormals

# Use the KD-tree when the crop has this many times more voxels than the two surfaces
# together: an EDT costs about 0.1 us per box voxel (two of them), a KD-tree build + query
# about 1 us per surface voxel (measured on the 2-core CI machine).
_KD_RATIO = 4.0
# Candidate partners whose (float) distance is within this relative margin of the nearest
# one are treated as ties when a spacing is given (far above rounding error, far below any
# real gap between distinct distances).
_TIE_RTOL = 1e-9
_TIE_K = 8


def normalize_spacing(spacing: Any, ndim: int) -> np.ndarray | None:
    """Spacing as scipy's EDT normalises it (one float64 per axis), or None."""
    if spacing is None:
        return None
    scalar = np.isscalar(spacing)
    values = [float(spacing)] * ndim if scalar else [float(s) for s in spacing]  # type: ignore[arg-type]
    if len(values) != ndim:
        raise ValueError(f"spacing: expected {ndim} values (one per axis), got {len(values)}")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing: every value must be finite and > 0, got {values}")
    return np.asarray(values, dtype=np.float64)


def check_tolerance(tolerance: Any, name: str) -> float:
    """``tolerance`` as a float; ValueError naming ``name`` unless it is finite and >= 0."""
    tol = float(tolerance)
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"{name}: must be finite and >= 0, got {tolerance!r}")
    return tol


def bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Tight bounding box of a boolean mask as slices, or None when it is empty."""
    box = ndi.find_objects(mask.view(np.uint8))
    return box[0] if box and box[0] is not None else None


def _union(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(
        slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )


def _erode(mask: np.ndarray) -> np.ndarray:
    """Binary erosion with the 1-connected cross, one iteration, outside = background.

    Same result as ``scipy.ndimage.binary_erosion(mask, generate_binary_structure(ndim, 1),
    border_value=0)`` (a voxel survives iff it and its 2 * ndim face neighbours are set; a
    neighbour outside the array is unset), with in-place slice ANDs: about 5x faster.
    """
    out = mask.copy()
    for axis in range(mask.ndim):

        def sl(s: slice, axis: int = axis) -> tuple[slice, ...]:
            return tuple(s if i == axis else slice(None) for i in range(mask.ndim))

        out[sl(slice(1, None))] &= mask[sl(slice(None, -1))]
        out[sl(slice(None, -1))] &= mask[sl(slice(1, None))]
        out[sl(slice(0, 1))] = False
        out[sl(slice(-1, None))] = False
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    """medpy's surface: mask XOR erosion with the 1-connected cross, outside = background."""
    return mask ^ _erode(mask)


def _surface_coords(mask: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Global coordinates (N, ndim) int64 of the surface of ``mask`` cropped to ``box``.

    Cropping a mask to its own bounding box keeps its surface: the voxels beyond the box are
    background, as is the outside of the array for the erosion.
    """
    flat = np.flatnonzero(_surface(mask))  # far faster than argwhere on sparse masks
    coords = np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int64)
    coords += np.array([s.start for s in box], dtype=np.int64)
    return coords


def _edt_at(points: np.ndarray, features: np.ndarray, spacing: np.ndarray | None) -> np.ndarray:
    """EDT distances (as medpy) from ``points`` (M, ndim) to the nearest of ``features``.

    The distance transform runs on the bounding box of points and features only. This is
    exact: scipy's feature transform (one pass per axis, each over lines of the previous
    pass's results) only uses coordinate differences, and a voxel inside a box that holds
    every feature only ever sees candidates from inside that box (lines outside it carry no
    feature), so it picks the same feature, and the same float64 distance, as on the whole
    volume.
    """
    both = np.concatenate((points, features))
    lo = both.min(axis=0)
    hi = both.max(axis=0) + 1
    not_surface = np.ones(tuple(int(v) for v in hi - lo), dtype=bool)
    not_surface[tuple((features - lo).T)] = False
    # Only the feature transform: the distances are then computed at ``points`` alone, with
    # scipy's own float operations (see _scipy_style_distance), instead of everywhere.
    ft = ndi.distance_transform_edt(
        not_surface, sampling=spacing, return_distances=False, return_indices=True
    )
    local = points - lo
    nearest = ft[(slice(None), *local.T)].T.astype(np.int64)
    return _scipy_style_distance(nearest - local, spacing)


def _scipy_style_distance(offsets: np.ndarray, spacing: np.ndarray | None) -> np.ndarray:
    """Distance from integer offsets (..., ndim) computed with scipy's EDT float operations.

    scipy: ``dt = (ft - indices).astype(float64); dt[i] *= sampling[i]; dt *= dt;
    dt = add.reduce(dt, axis=0); sqrt(dt)``. Reducing over the first axis adds the axes
    in order, so the same order is used here.
    """
    d = np.moveaxis(offsets, -1, 0).astype(np.float64)
    if spacing is not None:
        for i in range(len(spacing)):
            d[i, ...] *= spacing[i]
    np.multiply(d, d, d)
    return np.sqrt(np.add.reduce(d, axis=0))


def _kd_distances(
    src: np.ndarray, dst: np.ndarray, spacing: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """KD-tree distances from surface coordinates ``src`` (N, ndim) to ``dst`` (M, ndim).

    Returns:
        ``(distances (N,) float64, ambiguous (N,) bool)``. ``ambiguous`` marks points whose
        (near-)tied nearest partners give different float values with a spacing: which one
        the EDT picks is not predictable, so the caller computes those with the EDT.
    """
    if spacing is None:
        _, idx = cKDTree(dst).query(src, k=1)
        diff = dst[idx] - src
        sq = np.einsum("ij,ij->i", diff, diff)  # exact int64 squared distances
        return np.sqrt(sq.astype(np.float64)), np.zeros(len(src), dtype=bool)
    k = min(_TIE_K, len(dst))
    dist, idx = cKDTree(dst * spacing).query(src * spacing, k=k)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    near = dist <= dist[:, :1] * (1.0 + _TIE_RTOL) + 1e-12
    values = _scipy_style_distance(dst[idx] - src[:, None, :], spacing)
    best = values[:, 0]
    ambiguous = (near[:, 1:] & (values[:, 1:] != best[:, None])).any(axis=1)
    if k < len(dst):
        ambiguous |= near[:, -1]  # maybe more tied candidates than were fetched
    return best, ambiguous


def _directed(
    src: np.ndarray, dst: np.ndarray, spacing: np.ndarray | None, use_kd: bool
) -> np.ndarray:
    """Distances from every ``src`` surface voxel to the nearest ``dst`` one, as medpy."""
    if not use_kd:
        return _edt_at(src, dst, spacing)
    values, ambiguous = _kd_distances(src, dst, spacing)
    if ambiguous.any():
        values[ambiguous] = _edt_at(src[ambiguous], dst, spacing)
    return values


def surface_distances(
    a: np.ndarray,
    box_a: tuple[slice, ...],
    b: np.ndarray,
    box_b: tuple[slice, ...],
    spacings: Sequence[np.ndarray | None],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Directed surface distances ``(a -> b, b -> a)`` of two non-empty masks, per spacing.

    Every distance-based metric of the package (medpy's HD95, MONAI's HD95, surface Dice) is
    a function of these two arrays.

    Args:
        a: First mask cropped to its own bounding box, bool (same ndim as the volume).
        box_a: That box in the volume (:func:`bbox`).
        b: Second mask cropped to its own bounding box.
        box_b: That box in the volume.
        spacings: Spacings to measure in, each from :func:`normalize_spacing` (None: voxels).

    Returns:
        Per spacing, ``(d(a -> b) (N_a,) float64, d(b -> a) (N_b,) float64)`` over the
        surface voxels of each mask.
    """
    ca = _surface_coords(a, box_a)
    cb = _surface_coords(b, box_b)
    union = _union(box_a, box_b)
    assert union is not None
    box_size = math.prod(s.stop - s.start for s in union)
    use_kd = box_size > _KD_RATIO * (len(ca) + len(cb))
    with ieee_denormals():  # cKDTree can crash with denormals flushed (mtunet.fpenv)
        return [(_directed(ca, cb, sp, use_kd), _directed(cb, ca, sp, use_kd)) for sp in spacings]


def nonempty_boxes(a: np.ndarray, b: np.ndarray) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Bounding boxes of two masks; ValueError when either is empty (HD95 is undefined)."""
    box_a, box_b = bbox(a), bbox(b)
    if box_a is None:
        raise ValueError("pred: mask is empty; HD95 is undefined")
    if box_b is None:
        raise ValueError("gt: mask is empty; HD95 is undefined")
    return box_a, box_b


def pooled_hd95(d_ab: np.ndarray, d_ba: np.ndarray) -> float:
    """medpy: the 95th percentile of both directions pooled (order does not matter)."""
    return float(np.percentile(np.concatenate((d_ab, d_ba)), 95))


def max_directed_hd95(d_ab: np.ndarray, d_ba: np.ndarray) -> float:
    """MONAI: the larger of the two directed 95th percentiles."""
    return max(float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95)))


def normalized_surface_dice(d_ab: np.ndarray, d_ba: np.ndarray, tolerance: float) -> float:
    """Fraction of the surface voxels of both masks within ``tolerance`` of the other.

    A distance equal to the tolerance in exact arithmetic must count as within, but float64
    rounding can put it an ulp above (sqrt((3 * 0.8)^2 + 0.7^2) evaluates to
    2.5000000000000004), so the comparison allows the same tiny relative margin as the
    KD-tree's tie test.
    """
    limit = tolerance * (1.0 + _TIE_RTOL)
    within = int(np.count_nonzero(d_ab <= limit)) + int(np.count_nonzero(d_ba <= limit))
    return within / float(len(d_ab) + len(d_ba))
