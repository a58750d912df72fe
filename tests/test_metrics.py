"""Dice / HD95 against medpy (exact equality), the empty-mask conventions and the summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from medpy.metric import binary as medpy_binary

from mtunet.metrics import case_metrics, dice, hd95, summarize, surface

SPACINGS = [0.7, 0.8, 1.5, 2.5, 3.0, 0.6640625, 0.9765625, 1.0]


def _blobs(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Union of ``n`` random ellipsoids (bool array of ``shape``); may touch the border."""
    mask = np.zeros(shape, dtype=bool)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    for _ in range(n):
        centre = [rng.integers(0, s) for s in shape]
        radii = [rng.uniform(0.5, max(s / 3, 0.6)) for s in shape]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1
    return mask


def _random_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shape = tuple(int(s) for s in rng.integers(1, 28, size=3))
    while True:
        a = _blobs(rng, shape, int(rng.integers(1, 3)))
        b = _blobs(rng, shape, int(rng.integers(1, 3)))
        kind = rng.random()
        if kind < 0.25:  # scattered false positives
            a |= rng.random(shape) < 0.01
        elif kind < 0.4:  # one-voxel structure
            a = np.zeros(shape, dtype=bool)
            a[tuple(rng.integers(0, s) for s in shape)] = True
        elif kind < 0.5:  # touching the volume border on several faces
            b[0] |= True
            b[:, -1] |= True
        if a.any() and b.any():
            return a, b


def _random_spacing(rng: np.random.Generator) -> tuple[float, float, float] | None:
    if rng.random() < 0.4:
        return None
    return tuple(float(rng.choice(SPACINGS)) for _ in range(3))  # type: ignore[return-value]


@pytest.mark.parametrize("kd_ratio", [4.0, 0.0, math.inf], ids=["auto", "kdtree", "edt"])
def test_hd95_and_dice_equal_medpy_on_random_cases(
    kd_ratio: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kd_ratio 0 forces the KD-tree path, inf the distance transform on the crop.
    monkeypatch.setattr(surface, "_KD_RATIO", kd_ratio)
    rng = np.random.default_rng(1234)
    for _ in range(120):
        a, b = _random_pair(rng)
        sp = _random_spacing(rng)
        assert hd95(a, b, sp) == medpy_binary.hd95(a, b, voxelspacing=sp), (a.shape, sp)
        assert dice(a, b) == medpy_binary.dc(a, b)


def test_stray_false_positives_use_kdtree_and_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    original = surface._kd_distances

    def spy(
        src: np.ndarray, dst: np.ndarray, spacing: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        out = original(src, dst, spacing)
        calls.append(bool(out[1].all()))
        return out

    monkeypatch.setattr(surface, "_kd_distances", spy)
    rng = np.random.default_rng(7)
    shape = (40, 64, 64)
    gt = np.zeros(shape, dtype=bool)
    gt[10:20, 20:35, 25:40] = True
    pred = np.roll(gt, 2, axis=1)
    for _ in range(5):  # stray voxels in far corners stretch the union box over the volume
        pred[tuple(int(rng.integers(0, s)) for s in shape)] = True
    pred[0, 0, 0] = pred[-1, -1, -1] = True
    for sp in (None, (2.5, 0.7, 0.7), (3.0, 0.8, 0.6640625)):
        assert hd95(pred, gt, sp) == medpy_binary.hd95(pred, gt, voxelspacing=sp)
    assert calls and not all(calls)  # the KD-tree answered (most) points itself


def test_kdtree_tie_with_spacing_falls_back_to_edt() -> None:
    # From (0,0,0) the partners at offsets (1,1,4) and (1,4,1) are equally far for equal
    # in-plane spacing, but scipy's float sums ((z + y) + x) differ by an ulp for them
    # (IEEE-754 double arithmetic, the same on every platform numpy supports).
    sp = np.array([2.5, 0.7, 0.7])
    src = np.array([[0, 0, 0]])
    dst = np.array([[1, 1, 4], [1, 4, 1]])
    values = surface._scipy_style_distance(dst - src, sp)
    assert values[0] != values[1]
    assert surface._kd_distances(src, dst, sp)[1].tolist() == [True]
    # Unit spacing: integer squared distances, no ambiguity.
    values, ambiguous = surface._kd_distances(src, dst, None)
    assert values.tolist() == [math.sqrt(18.0)] and not ambiguous.any()
    # And the public function (which falls back to the EDT) still equals medpy.
    a = np.zeros((2, 5, 5), dtype=bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[1, 1, 4] = b[1, 4, 1] = True
    assert hd95(a, b, sp) == medpy_binary.hd95(a, b, voxelspacing=sp)


def test_edt_on_sub_boxes_for_ambiguous_points_matches_medpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A huge tie tolerance marks most points ambiguous: they are then answered by the EDT on
    # the box of those points and all partner surface voxels, which must still be exact.
    monkeypatch.setattr(surface, "_KD_RATIO", 0.0)
    monkeypatch.setattr(surface, "_TIE_RTOL", 0.5)
    rng = np.random.default_rng(99)
    for _ in range(25):
        a, b = _random_pair(rng)
        sp = tuple(float(rng.choice(SPACINGS)) for _ in range(3))
        assert hd95(a, b, sp) == medpy_binary.hd95(a, b, voxelspacing=sp), (a.shape, sp)


def test_erosion_equals_scipy() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(5)
    for shape in [(1, 5, 6), (7, 1, 3), (2, 2, 2), (9, 10, 11), (13,), (4, 17)]:
        mask = rng.random(shape) < 0.8
        ref = ndimage.binary_erosion(
            mask, ndimage.generate_binary_structure(mask.ndim, 1), border_value=0
        )
        np.testing.assert_array_equal(surface._erode(mask), ref)


def test_border_and_single_voxel_cases_equal_medpy() -> None:
    a = np.zeros((6, 7, 8), dtype=bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True  # a corner voxel
    b[:, :, -1] = True  # a whole face of the volume
    for sp in (None, (3.0, 0.7, 0.7)):
        assert hd95(a, b, sp) == medpy_binary.hd95(a, b, voxelspacing=sp)
        assert hd95(a, a, sp) == 0.0
    full = np.ones((3, 4, 5), dtype=bool)
    assert hd95(full, a[:3, :4, :5]) == medpy_binary.hd95(full, a[:3, :4, :5])


def test_hd95_rejects_empty_and_mismatched_input() -> None:
    a = np.zeros((4, 4, 4), dtype=bool)
    b = a.copy()
    b[1, 1, 1] = True
    with pytest.raises(ValueError, match="pred: mask is empty"):
        hd95(a, b)
    with pytest.raises(ValueError, match="gt: mask is empty"):
        hd95(b, a)
    with pytest.raises(ValueError, match="shapes differ"):
        hd95(b, b[:3])
    with pytest.raises(ValueError, match="spacing"):
        hd95(b, b, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(b, b, (1.0, 0.0, 1.0))


def _reference_case(pred: np.ndarray, gt: np.ndarray, k: int) -> tuple[float, float]:
    """TransUNet's calculate_metric_percase on class k, with medpy."""
    p, g = pred == k, gt == k
    if p.any() and g.any():
        return medpy_binary.dc(p, g), medpy_binary.hd95(p, g)
    if p.any():
        return 1.0, 0.0
    return 0.0, 0.0


def test_case_metrics_match_published_evaluation() -> None:
    rng = np.random.default_rng(3)
    shape = (12, 30, 26)
    gt = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    gt[_blobs(rng, shape, 2)] = 1
    pred[np.roll(gt == 1, 1, axis=2)] = 1
    gt[_blobs(rng, shape, 1)] = 2
    pred[_blobs(rng, shape, 1)] = 2
    pred[rng.random(shape) < 0.003] = 2  # stray false positives
    pred[3, 4, 5] = 3  # class 3: only in the prediction -> gt_empty
    gt[8:10, 5:9, 5:9] = 4  # class 4: only in the ground truth -> pred_empty
    spacing = (2.5, 0.7, 0.75)
    rows = case_metrics(pred, gt, num_classes=6, spacing=spacing)
    assert [r["class_id"] for r in rows] == [1, 2, 3, 4, 5]
    conventions = [r["convention"] for r in rows]
    assert conventions == ["both", "both", "gt_empty", "pred_empty", "both_empty"]
    for row in rows:
        k = row["class_id"]
        ref_dice, ref_hd = _reference_case(pred, gt, k)
        assert row["dice"] == ref_dice and row["hd95"] == ref_hd
        if row["convention"] == "both":
            ref_mm = medpy_binary.hd95(pred == k, gt == k, voxelspacing=spacing)
            assert row["hd95_mm"] == ref_mm
            assert row["hd95_mm"] != row["hd95"]
        else:
            assert row["hd95_mm"] == 0.0
    assert all(r["hd95_mm"] is None for r in case_metrics(pred, gt, 6))


def test_case_metrics_nan_policy() -> None:
    gt = np.zeros((4, 8, 8), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[1:3, 2:5, 2:5] = 1
    pred[1:3, 2:5, 3:6] = 1
    pred[0, 0, 0] = 2
    gt[2, 6, 6] = 3
    rows = {r["class_id"]: r for r in case_metrics(pred, gt, 5, (1.0, 1.0, 1.0), "nan")}
    assert rows[1]["convention"] == "both" and 0 < rows[1]["dice"] < 1
    assert rows[2]["dice"] == 0.0 and math.isnan(rows[2]["hd95"])  # gt_empty
    assert rows[3]["dice"] == 0.0 and math.isnan(rows[3]["hd95"])  # pred_empty
    assert math.isnan(rows[4]["dice"]) and math.isnan(rows[4]["hd95_mm"])  # both_empty
    published = {r["class_id"]: r for r in case_metrics(pred, gt, 5)}
    assert (published[2]["dice"], published[2]["hd95"]) == (1.0, 0.0)
    assert (published[3]["dice"], published[3]["hd95"]) == (0.0, 0.0)
    assert published[1] == {**rows[1], "hd95_mm": None, "hd95_monai_mm": None}


def test_case_metrics_bad_input() -> None:
    a = np.zeros((3, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="empty_policy"):
        case_metrics(a, a, 3, empty_policy="zero")
    with pytest.raises(ValueError, match=r"pred: labels must lie in \[0, 2\]"):
        case_metrics(a + 3, a, 3)
    with pytest.raises(ValueError, match="integer label"):
        case_metrics(a.astype(np.float32), a, 3)
    with pytest.raises(ValueError, match="shapes differ"):
        case_metrics(a, a[:2], 3)
    with pytest.raises(ValueError, match="num_classes"):
        case_metrics(a, a, 1)


def _table(rows: list[tuple[str, int, float, float, float | None, str]]) -> pd.DataFrame:
    cols = ["case", "class_id", "dice", "hd95", "hd95_mm", "convention"]
    return pd.DataFrame(rows, columns=cols)


def test_summarize_means_over_cases_then_classes() -> None:
    names = ["background", "aorta", "liver"]
    df = _table(
        [
            ("c1", 1, 0.8, 2.0, 1.5, "both"),
            ("c2", 1, 0.6, 4.0, 2.5, "both"),
            ("c1", 2, 1.0, 0.0, 0.0, "gt_empty"),
            ("c2", 2, 0.0, 0.0, 0.0, "pred_empty"),
            ("c3", 1, 0.4, 6.0, 3.5, "both"),
            ("c3", 2, 0.5, 3.0, 2.0, "both"),
        ]
    )
    out = summarize(
        df, names, model_selection={"rule": "last", "epoch": 3}, data_source="synthetic"
    )
    assert out["n_cases"] == 3
    assert out["per_class"]["aorta"]["dsc"] == pytest.approx(60.0)
    assert out["per_class"]["aorta"]["hd95"] == pytest.approx(4.0)
    assert out["per_class"]["aorta"]["hd95_mm"] == pytest.approx(2.5)
    assert out["per_class"]["liver"]["dsc"] == pytest.approx(50.0)
    assert out["per_class"]["liver"]["hd95"] == pytest.approx(1.0)
    assert out["dsc"] == pytest.approx(55.0)
    assert out["hd95"] == pytest.approx(2.5)
    assert out["hd95_mm"] == pytest.approx((2.5 + 2.0 / 3) / 2)
    assert out["empty_policy"] == "published"
    assert out["empty_mask_cases"] == {"gt_empty": 1, "pred_empty": 1, "both_empty": 0}
    assert out["model_selection"] == {"rule": "last", "epoch": 3}
    assert out["data_source"] == "synthetic"


def test_summarize_nan_policy_and_missing_spacing() -> None:
    nan = math.nan
    df = _table(
        [
            ("c1", 1, 0.8, 2.0, None, "both"),
            ("c2", 1, 0.0, nan, nan, "pred_empty"),
            ("c1", 2, nan, nan, nan, "both_empty"),
            ("c2", 2, nan, nan, nan, "both_empty"),
        ]
    )
    out = summarize(df, ["bg", "a", "b"])
    assert out["empty_policy"] == "nan"  # inferred from the NaN rows
    assert out["per_class"]["a"]["dsc"] == pytest.approx(40.0)
    assert out["per_class"]["a"]["hd95"] == pytest.approx(2.0)
    assert out["per_class"]["a"]["hd95_mm"] is None  # c1 has no spacing
    assert out["per_class"]["b"] == {"dsc": None, "hd95": None, "hd95_mm": None}
    assert out["dsc"] == pytest.approx(40.0)
    assert out["hd95_mm"] is None
    assert out["empty_mask_cases"] == {"gt_empty": 0, "pred_empty": 1, "both_empty": 2}


def test_summarize_round_trip_with_case_metrics() -> None:
    rng = np.random.default_rng(11)
    rows = []
    for case in ("a", "b", "c"):
        gt = np.zeros((6, 20, 20), dtype=np.uint8)
        gt[_blobs(rng, gt.shape, 2)] = 1
        gt[_blobs(rng, gt.shape, 1)] = 2
        pred = np.where(rng.random(gt.shape) < 0.05, 0, gt).astype(np.uint8)
        for r in case_metrics(pred, gt, 3, spacing=(2.0, 1.0, 1.0)):
            rows.append({"case": case, **r})
    df = pd.DataFrame(rows)
    out = summarize(df, ["bg", "x", "y"])
    x = df[df.class_id == 1]
    assert out["per_class"]["x"]["dsc"] == pytest.approx(100 * x["dice"].mean())
    assert out["per_class"]["x"]["hd95_mm"] == pytest.approx(x["hd95_mm"].mean())
    assert out["n_cases"] == 3


def test_summarize_bad_input() -> None:
    df = _table([("c1", 1, 0.8, 2.0, 1.0, "both")])
    with pytest.raises(ValueError, match="missing column"):
        summarize(df.drop(columns=["hd95"]), ["bg", "a"])
    with pytest.raises(ValueError, match="no name for class id"):
        summarize(df, ["bg"])
    with pytest.raises(ValueError, match="convention"):
        summarize(df.assign(convention="weird"), ["bg", "a"])
    with pytest.raises(ValueError, match="duplicate row"):
        summarize(pd.concat([df, df]), ["bg", "a"])
    with pytest.raises(ValueError, match="no rows"):
        summarize(df.iloc[:0], ["bg", "a"])
