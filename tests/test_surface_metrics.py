"""MONAI's HD95 convention and the normalised surface Dice against MONAI's own functions."""

from __future__ import annotations

import math
import warnings
from types import ModuleType

import numpy as np
import pytest

from mtunet.metrics import case_metrics, dice, hd95, hd95_monai, surface_dice

SPACINGS = [0.7, 0.8, 1.5, 2.5, 3.0, 0.6640625, 0.9765625]
# 0 (only coincident surface voxels), distances that occur exactly on the grid, and others.
TOLERANCES = [0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0]


@pytest.fixture(scope="module")
def monai_metrics() -> ModuleType:
    # MONAI is a dependency (the baselines are its networks): no skip.
    import monai.metrics

    return monai.metrics


def _blobs(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Union of ``n`` random ellipsoids (bool array of ``shape``); may touch the border."""
    mask = np.zeros(shape, dtype=bool)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    for _ in range(n):
        centre = [rng.integers(0, s) for s in shape]
        radii = [rng.uniform(0.5, max(s / 3, 0.6)) for s in shape]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1
    return mask


def _cases(
    seed: int, ndim: int, anisotropic: bool, n: int
) -> list[tuple[np.ndarray, np.ndarray, tuple[float, ...] | None]]:
    """Random non-empty mask pairs (blobs, stray voxels, border contact) with a spacing."""
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, np.ndarray, tuple[float, ...] | None]] = []
    high = 24 if ndim == 3 else 60
    while len(out) < n:
        shape = tuple(int(s) for s in rng.integers(2, high, size=ndim))
        a = _blobs(rng, shape, int(rng.integers(1, 3)))
        b = _blobs(rng, shape, int(rng.integers(1, 3)))
        kind = rng.random()
        if kind < 0.3:  # scattered false positives far from the organ
            a |= rng.random(shape) < 0.01
        elif kind < 0.45:  # touching the array border
            b[0] = True
        if not (a.any() and b.any()):
            continue
        sp = tuple(float(rng.choice(SPACINGS)) for _ in range(ndim)) if anisotropic else None
        out.append((a, b, sp))
    return out


def _onehot(mask: np.ndarray) -> object:
    """(1, 2, *shape) float tensor: background and foreground channels, as MONAI expects."""
    import torch

    m = torch.as_tensor(mask)
    return torch.stack([~m, m])[None].float()


def _monai_hd95(mm: ModuleType, a: np.ndarray, b: np.ndarray, sp: object) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks
        out = mm.compute_hausdorff_distance(_onehot(a), _onehot(b), percentile=95, spacing=sp)
    return float(out.item())


def _monai_nsd(mm: ModuleType, a: np.ndarray, b: np.ndarray, tol: float, sp: object) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = mm.compute_surface_dice(_onehot(a), _onehot(b), class_thresholds=[tol], spacing=sp)
    return float(out.item())


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("anisotropic", [False, True], ids=["voxels", "spacing"])
def test_hd95_monai_matches_monai(monai_metrics: ModuleType, ndim: int, anisotropic: bool) -> None:
    differs_from_medpy = 0
    for a, b, sp in _cases(10 * ndim + anisotropic, ndim, anisotropic, 40):
        ours = hd95_monai(a, b, sp)
        ref = _monai_hd95(monai_metrics, a, b, sp)
        # MONAI's distances and torch.quantile are float32: agree to float32 precision.
        assert ours == pytest.approx(ref, rel=1e-5, abs=1e-5), (a.shape, sp)
        assert ours == hd95_monai(b, a, sp)  # symmetric
        differs_from_medpy += abs(ours - hd95(a, b, sp)) > 1e-3 * max(ours, 1.0)
    # The conventions really differ on these masks, so the comparison above can tell them apart.
    assert differs_from_medpy >= 5


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("anisotropic", [False, True], ids=["voxels", "spacing"])
def test_surface_dice_matches_monai(
    monai_metrics: ModuleType, ndim: int, anisotropic: bool
) -> None:
    rng = np.random.default_rng(ndim)
    values = []
    for a, b, sp in _cases(100 + 10 * ndim + anisotropic, ndim, anisotropic, 40):
        tol = float(rng.choice(TOLERANCES))
        ours = surface_dice(a, b, tol, sp)
        # Same counts; MONAI's ratio is a float32.
        assert ours == pytest.approx(_monai_nsd(monai_metrics, a, b, tol, sp), abs=1e-6), (
            a.shape,
            sp,
            tol,
        )
        assert ours == surface_dice(b, a, tol, sp)
        values.append(ours)
    assert min(values) >= 0.0 and max(values) <= 1.0
    assert len({round(v, 6) for v in values}) > 10  # not a degenerate set of answers


def test_surface_dice_counts_exact_ties_as_within(monai_metrics: ModuleType) -> None:
    # The two voxels are (3, 1) apart: sqrt((3 * 0.8)^2 + 0.7^2) = 2.5 exactly, but float64
    # evaluates it to 2.5000000000000004; a tie at the tolerance counts as within.
    a = np.zeros((6, 4), dtype=bool)
    b = np.zeros_like(a)
    a[0, 0] = True
    b[3, 1] = True
    sp = (0.8, 0.7)
    assert math.sqrt((3 * 0.8) ** 2 + 0.7**2) > 2.5
    assert surface_dice(a, b, 2.5, sp) == 1.0 == _monai_nsd(monai_metrics, a, b, 2.5, sp)
    assert surface_dice(a, b, 2.49, sp) == 0.0 == _monai_nsd(monai_metrics, a, b, 2.49, sp)


def test_hand_computed_values() -> None:
    # A 3 x 3 square has 8 surface voxels (the centre is interior). Against the same square
    # shifted one column, 4 of them lie on the other surface and 4 are 1 away (the 3 of the
    # trailing column and the one beside the other square's interior centre), both ways.
    a = np.zeros((7, 9), dtype=bool)
    a[2:5, 2:5] = True
    b = np.roll(a, 1, axis=1)
    assert surface_dice(a, a, 0.0) == 1.0
    assert hd95_monai(a, a) == 0.0
    assert surface_dice(a, b, 0.5) == 8 / 16
    assert surface_dice(a, b, 1.0) == 1.0
    assert hd95_monai(a, b) == float(np.percentile([0.0] * 4 + [1.0] * 4, 95)) == 1.0
    # Two single voxels 3 apart: every distance is 3.
    p = np.zeros((1, 5), dtype=bool)
    q = np.zeros_like(p)
    p[0, 0] = q[0, 3] = True
    assert hd95_monai(p, q) == 3.0 == hd95(p, q)
    assert surface_dice(p, q, 2.0) == 0.0 and surface_dice(p, q, 3.0) == 1.0
    assert surface_dice(p, q, 1.0, spacing=(1.0, 0.25)) == 1.0  # 3 voxels of 0.25 mm


def test_empty_masks(monai_metrics: ModuleType) -> None:
    empty = np.zeros((8, 9), dtype=bool)
    full = empty.copy()
    full[2:5, 3:7] = True
    # Surface Dice as MONAI: 0 with one empty mask, NaN with two.
    for x, y in ((full, empty), (empty, full)):
        assert surface_dice(x, y, 2.0) == 0.0 == _monai_nsd(monai_metrics, x, y, 2.0, None)
    assert math.isnan(surface_dice(empty, empty, 2.0))
    assert math.isnan(_monai_nsd(monai_metrics, empty, empty, 2.0, None))
    # HD95 is undefined with an empty mask: raise, as hd95 (MONAI gives NaN/inf instead).
    with pytest.raises(ValueError, match="pred: mask is empty"):
        hd95_monai(empty, full)
    with pytest.raises(ValueError, match="gt: mask is empty"):
        hd95_monai(full, empty)


def test_bad_input() -> None:
    a = np.ones((3, 4), dtype=bool)
    with pytest.raises(ValueError, match="tolerance"):
        surface_dice(a, a, -1.0)
    with pytest.raises(ValueError, match="tolerance"):
        surface_dice(a, a, math.nan)
    with pytest.raises(ValueError, match="shapes differ"):
        surface_dice(a, a[:2], 1.0)
    with pytest.raises(ValueError, match="spacing"):
        hd95_monai(a, a, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="nsd_tolerance"):
        case_metrics(a.astype(np.uint8), a.astype(np.uint8), 2, nsd_tolerance=-2.0)


def _label_maps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    shape = (10, 28, 24)
    gt = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    gt[_blobs(rng, shape, 2)] = 1
    pred[np.roll(gt == 1, 2, axis=2)] = 1
    gt[_blobs(rng, shape, 1)] = 2
    pred[_blobs(rng, shape, 1)] = 2
    pred[rng.random(shape) < 0.003] = 2  # stray false positives
    pred[3, 4, 5] = 3  # class 3 only in the prediction -> gt_empty
    gt[8:10, 5:9, 5:9] = 4  # class 4 only in the ground truth -> pred_empty
    return pred, gt  # class 5 in neither -> both_empty


def test_case_metrics_new_keys_equal_the_functions() -> None:
    pred, gt = _label_maps()
    spacing = (2.5, 0.7, 0.75)
    rows = case_metrics(pred, gt, 6, spacing=spacing, nsd_tolerance=1.5)
    assert [r["convention"] for r in rows] == [
        "both",
        "both",
        "gt_empty",
        "pred_empty",
        "both_empty",
    ]
    for row in rows[:2]:
        p, g = pred == row["class_id"], gt == row["class_id"]
        # The existing keys are unchanged ...
        assert row["dice"] == dice(p, g)
        assert row["hd95"] == hd95(p, g) and row["hd95_mm"] == hd95(p, g, spacing)
        # ... and the new ones are the standalone functions (tolerance in mm with a spacing).
        assert row["hd95_monai"] == hd95_monai(p, g)
        assert row["hd95_monai_mm"] == hd95_monai(p, g, spacing)
        assert row["nsd"] == surface_dice(p, g, 1.5, spacing)
    # Without a spacing the tolerance is in voxels and there are no mm values.
    for row in case_metrics(pred, gt, 6, nsd_tolerance=1.5)[:2]:
        p, g = pred == row["class_id"], gt == row["class_id"]
        assert row["nsd"] == surface_dice(p, g, 1.5)
        assert row["hd95_mm"] is None and row["hd95_monai_mm"] is None
    # The default tolerance is 2 mm.
    default = case_metrics(pred, gt, 6, spacing=spacing)[0]
    assert default["nsd"] == surface_dice(pred == 1, gt == 1, 2.0, spacing)


def test_case_metrics_empty_rows_follow_the_policy() -> None:
    pred, gt = _label_maps()
    sp = (2.5, 0.7, 0.75)
    for policy in ("published", "nan"):
        for row in case_metrics(pred, gt, 6, spacing=sp, empty_policy=policy)[2:]:
            # NSD takes Dice's value, MONAI's HD95 takes HD95's (NaN-aware comparison).
            np.testing.assert_equal(
                (row["nsd"], row["hd95_monai"], row["hd95_monai_mm"]),
                (row["dice"], row["hd95"], row["hd95_mm"]),
            )
    nan_rows = case_metrics(pred, gt, 6, spacing=sp, empty_policy="nan")
    # Under "nan" that is also surface_dice's own (MONAI's) convention: 0, 0, NaN.
    for row in nan_rows[2:]:
        k = row["class_id"]
        np.testing.assert_equal(row["nsd"], surface_dice(pred == k, gt == k, 2.0, sp))
    assert [r["nsd"] for r in case_metrics(pred, gt, 6)[2:]] == [1.0, 0.0, 0.0]
