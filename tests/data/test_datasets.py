"""SliceDataset / VolumeDataset, the augmentation, normalize and the manifest loader."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from scipy import ndimage

from mtunet.data import SliceDataset, load_manifest, normalize
from mtunet.data.common import write_npz
from mtunet.data.transforms import augment, resize, sample_rng
from mtunet.fileio import write_json


def _manifest(root: Path, n: int = 6, shape: tuple[int, int] = (12, 10)) -> Path:
    rng = np.random.default_rng(0)
    slices = []
    for i in range(n):
        rel = f"train_npz/case0005_slice{i:03d}.npz"
        write_npz(
            root / rel,
            {
                "image": rng.random(shape).astype(np.float32),
                "label": rng.integers(0, 9, shape).astype(np.uint8),
            },
        )
        slices.append(rel)
    write_json(
        root / "dataset.json",
        {
            "name": "synapse",
            "num_classes": 9,
            "class_names": [str(i) for i in range(9)],
            "modality": "CT",
            "preprocessing": {"kind": "minmax"},
            "splits": {"train": {"cases": ["case0005"], "slices": slices}},
        },
    )
    return root


def test_slice_items_and_resize(tmp_path: Path) -> None:
    ds = SliceDataset(_manifest(tmp_path), "train", (16, 24), augment=False)
    item = ds[0]
    assert item["image"].shape == (1, 16, 24) and item["image"].dtype == torch.float32
    assert item["label"].shape == (16, 24) and item["label"].dtype == torch.int64
    assert item["case"] == "case0005"
    with np.load(tmp_path / "train_npz/case0005_slice000.npz") as f:
        labels = set(np.unique(f["label"]).tolist())
    assert set(item["label"].unique().tolist()) <= labels  # order-0 resize adds no class


def test_label_ids_are_checked_where_slices_load(tmp_path: Path) -> None:
    """The loss no longer reads labels on the host: a bad id is caught here, naming the file."""
    root = _manifest(tmp_path, n=2)
    bad = root / "train_npz/case0005_slice001.npz"
    write_npz(
        bad, {"image": np.zeros((12, 10), np.float32), "label": np.full((12, 10), 9, np.uint8)}
    )
    ds = SliceDataset(root, "train", (12, 10))
    assert int(ds[0]["label"].max()) <= 8
    with pytest.raises(ValueError, match=r"case0005_slice001\.npz.*label"):
        ds[1]


def test_augmentation_depends_only_on_seed_epoch_index(tmp_path: Path) -> None:
    m = load_manifest(_manifest(tmp_path))
    a = SliceDataset(m, "train", (12, 10), augment=True, seed=7)
    b = SliceDataset(m, "train", (12, 10), augment=True, seed=7)
    for i in reversed(range(len(b))):  # another access order (another worker layout)
        b[i]
    for i in range(len(a)):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert torch.equal(a[i]["label"], b[i]["label"])
    plain = SliceDataset(m, "train", (12, 10), augment=False)
    epochs = []
    for epoch in range(4):
        a.set_epoch(epoch)
        epochs.append(torch.stack([a[i]["image"] for i in range(len(a))]))
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:])
    assert any(not torch.equal(epochs[0][i], plain[i]["image"]) for i in range(len(a)))


# ---- The published ``RandomGenerator`` (TransUNet / MT-UNet), written out as a reference ----
#
# The authors draw the branch coins with ``random.random()`` and k / axis / angle with
# ``np.random.randint``; here both come from injected callables so the reference and
# ``mtunet.data.transforms`` can be fed the very same draws.

Coin = Callable[[], float]
RandInt = Callable[[int, int], int]


def published_augment(
    image: np.ndarray, label: np.ndarray, coin: Coin, randint: RandInt
) -> tuple[np.ndarray, np.ndarray]:
    """The random part of the published ``RandomGenerator.__call__``, verbatim but for the RNG."""
    if coin() > 0.5:  # random_rot_flip
        k = randint(0, 4)
        image = np.rot90(image, k)
        label = np.rot90(label, k)
        axis = randint(0, 2)
        image = np.flip(image, axis=axis).copy()
        label = np.flip(label, axis=axis).copy()
    elif coin() > 0.5:  # random_rotate
        angle = randint(-20, 20)
        image = ndimage.rotate(image, angle, order=0, reshape=False)
        label = ndimage.rotate(label, angle, order=0, reshape=False)
    return image, label


def published_random_generator(
    image: np.ndarray,
    label: np.ndarray,
    output_size: tuple[int, int],
    coin: Coin,
    randint: RandInt,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole published ``RandomGenerator(output_size)``: augment, zoom, tensors."""
    image, label = published_augment(image, label, coin, randint)
    x, y = image.shape
    if x != output_size[0] or y != output_size[1]:
        image = ndimage.zoom(image, (output_size[0] / x, output_size[1] / y), order=3)
        label = ndimage.zoom(label, (output_size[0] / x, output_size[1] / y), order=0)
    image_t = torch.from_numpy(image.astype(np.float32)).unsqueeze(0)
    label_t = torch.from_numpy(label.astype(np.float32))
    return image_t, label_t.long()


class _ScriptedRng:
    """Stands in for ``numpy.random.Generator``: hands out a fixed script of draws.

    ``integers(low, high)`` also checks that the code asks for the published range.
    """

    def __init__(self, coins: list[float], ints: list[tuple[int, int, int]]) -> None:
        self.coins = list(coins)
        self.ints = list(ints)  # (low, high, value)

    def random(self) -> float:
        return self.coins.pop(0)

    def integers(self, low: int, high: int) -> int:
        lo, hi, value = self.ints.pop(0)
        assert (low, high) == (lo, hi), f"integers({low}, {high}), published: ({lo}, {hi})"
        return value

    def published_draws(self) -> tuple[Coin, RandInt]:
        """The same script as the reference's ``random.random`` and ``np.random.randint``."""
        return self.random, self.integers


class _RecordingRng:
    """Wraps a ``numpy.random.Generator`` and logs every ``random`` / ``integers`` draw."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.calls: list[tuple[str, tuple[int, ...], float]] = []

    def random(self) -> float:
        value = float(self._rng.random())
        self.calls.append(("random", (), value))
        return value

    def integers(self, low: int, high: int) -> int:
        value = int(self._rng.integers(low, high))
        self.calls.append(("integers", (low, high), value))
        return value


def _probe(shape: tuple[int, int] = (40, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A non-square image of distinct values and an integer label map with ids {0, 3, 7}."""
    rng = np.random.default_rng(42)
    image = (rng.permutation(shape[0] * shape[1]).reshape(shape) + 1).astype(np.float32) / 100
    label = rng.choice(np.array([0, 3, 7], np.uint8), size=shape)
    return image, label


# Every (rot90 k, flip axis) and a spread of angles including both ends of [-20, 20).
_ROT_FLIP_SCRIPTS = [([0.9], [(0, 4, k), (0, 2, axis)]) for k in range(4) for axis in range(2)]
_ROTATE_SCRIPTS = [([0.2, 0.7], [(-20, 20, a)]) for a in (-20, -13, -1, 0, 1, 9, 19)]
_NONE_SCRIPTS = [([0.2, 0.3], []), ([0.5, 0.5], [])]  # 0.5 is not > 0.5: no transform


@pytest.mark.parametrize(("coins", "ints"), _ROT_FLIP_SCRIPTS + _ROTATE_SCRIPTS + _NONE_SCRIPTS)
def test_augment_equals_published_random_generator_on_fixed_draws(
    coins: list[float], ints: list[tuple[int, int, int]]
) -> None:
    image, label = _probe((12, 10))
    size = (16, 24)
    ours_rng = _ScriptedRng(coins, ints)
    ref_rng = _ScriptedRng(coins, ints)
    out_i, out_l = resize(*augment(image, label, cast(np.random.Generator, ours_rng)), size)
    ref_i, ref_l = published_random_generator(image, label, size, *ref_rng.published_draws())
    # Same draws consumed, in the same order, and the same output bit for bit.
    assert ours_rng.coins == ref_rng.coins == [] and ours_rng.ints == ref_rng.ints == []
    assert out_i.dtype == np.float32 and out_l.dtype == np.uint8
    assert torch.equal(torch.from_numpy(out_i).unsqueeze(0), ref_i)
    assert torch.equal(torch.from_numpy(out_l.astype(np.int64)), ref_l)
    assert set(np.unique(out_l).tolist()) <= {0, 3, 7}


def test_augment_branch_frequencies_angles_and_outputs_over_many_draws() -> None:
    """4000 seeded draws of the dataset's per-sample stream: the branches come up with
    probabilities 1/2 (rot90 + flip), 1/4 (rotation), 1/4 (unchanged), within 5 sigma of a
    binomial; angles are the integers of [-20, 20); every output equals the published
    transform of the draws that produced it."""
    image, label = _probe()
    # The probe pins the angle: distinct angles give distinct (order-0) rotations.
    rotations = {
        a: (
            ndimage.rotate(image, a, order=0, reshape=False),
            ndimage.rotate(label, a, order=0, reshape=False),
        )
        for a in range(-20, 20)
    }
    assert len({r[0].tobytes() for r in rotations.values()}) == 40
    n = 4000
    counts = {"rot_flip": 0, "rotate": 0, "none": 0}
    angles: list[int] = []
    ks: set[tuple[int, int]] = set()
    for i in range(n):
        rec = _RecordingRng(sample_rng(11, 0, i))
        out_i, out_l = augment(image, label, cast(np.random.Generator, rec))
        calls = [(name, args) for name, args, _ in rec.calls]
        values = [v for _, _, v in rec.calls]
        if calls == [("random", ()), ("integers", (0, 4)), ("integers", (0, 2))]:
            assert values[0] > 0.5
            k, axis = int(values[1]), int(values[2])
            ks.add((k, axis))
            exp_i = np.flip(np.rot90(image, k), axis=axis)
            exp_l = np.flip(np.rot90(label, k), axis=axis)
            counts["rot_flip"] += 1
        elif calls == [("random", ()), ("random", ()), ("integers", (-20, 20))]:
            assert values[0] <= 0.5 < values[1]
            angle = int(values[2])
            angles.append(angle)
            exp_i, exp_l = rotations[angle]
            counts["rotate"] += 1
        else:
            assert calls == [("random", ()), ("random", ())], calls
            assert values[0] <= 0.5 and values[1] <= 0.5
            exp_i, exp_l = image, label
            counts["none"] += 1
        np.testing.assert_array_equal(out_i, exp_i)
        np.testing.assert_array_equal(out_l, exp_l)
        assert out_i.dtype == image.dtype and out_l.dtype == label.dtype
    for branch, p in (("rot_flip", 0.5), ("rotate", 0.25), ("none", 0.25)):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[branch] - n * p) < 5 * sigma, (branch, counts)
    # Rotation angles: integers in [-20, 20), every one of them reached (~1000 draws).
    assert set(angles) == set(range(-20, 20))
    assert ks == {(k, a) for k in range(4) for a in range(2)}
    # Rotation is order 0 for the image as well: no new values, only the zero fill.
    for a in (-20, 7, 19):
        assert set(np.unique(rotations[a][0])) <= set(np.unique(image)) | {0.0}
        assert set(np.unique(rotations[a][1]).tolist()) <= {0, 3, 7}


def test_resize_interpolation_orders() -> None:
    """Image zoom is cubic (order 3), label zoom nearest (order 0): ids stay ids."""
    image, label = _probe((12, 10))
    ri, rl = resize(image, label, (30, 17))
    assert ri.shape == rl.shape == (30, 17)
    assert ri.dtype == np.float32 and rl.dtype == np.uint8
    factors = (30 / 12, 17 / 10)
    np.testing.assert_array_equal(ri, ndimage.zoom(image, factors, order=3))
    np.testing.assert_array_equal(rl, ndimage.zoom(label, factors, order=0))
    # The orders are told apart on this probe: linear or nearest would give other images,
    # and any non-nearest label zoom creates ids that are not in the input.
    for order in (0, 1):
        assert not np.array_equal(ri, ndimage.zoom(image, factors, order=order))
    for order in (1, 3):
        assert not set(np.unique(ndimage.zoom(label, factors, order=order))) <= {0, 3, 7}
    assert set(np.unique(rl).tolist()) == {0, 3, 7}
    assert not set(np.unique(ri)) <= set(np.unique(image))  # interpolated values
    # Already the right size: returned as is.
    same_i, same_l = resize(image, label, (12, 10))
    assert same_i is image and same_l is label


def test_dataset_items_equal_published_random_generator(tmp_path: Path) -> None:
    """SliceDataset(augment=True) item = published RandomGenerator on the item's draws."""
    m = load_manifest(_manifest(tmp_path))
    ds = SliceDataset(m, "train", (16, 24), augment=True, seed=5)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i, path in enumerate(m.paths("train", "slices")):
            with np.load(path) as f:
                image, label = f["image"], f["label"]
            draws = _RecordingRng(sample_rng(5, epoch, i))
            ref_i, ref_l = published_random_generator(
                image, label, (16, 24), draws.random, draws.integers
            )
            item = ds[i]
            assert torch.equal(item["image"], ref_i)
            assert torch.equal(item["label"], ref_l)


def test_normalize() -> None:
    hu = np.array([-1000, -125, 75, 275, 3000], np.int16)
    out = normalize(hu, {"kind": "ct_window", "hu_min": -125.0, "hu_max": 275.0})
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])
    assert out.dtype == np.float32
    np.testing.assert_allclose(
        normalize(np.array([2.0, 4.0, 6.0]), {"kind": "minmax"}), [0, 0.5, 1]
    )
    np.testing.assert_array_equal(normalize(np.full(3, 5.0), {"kind": "minmax"}), np.zeros(3))
    with pytest.raises(ValueError, match=r"preprocessing\.kind"):
        normalize(hu, {"kind": "zscore"})
    with pytest.raises(ValueError, match="non-finite"):
        normalize(np.array([np.nan, 1.0]), {"kind": "minmax"})


def test_manifest_errors(tmp_path: Path) -> None:
    root = _manifest(tmp_path)
    m = load_manifest(root / "dataset.json")
    assert m.root == root and m.paths("train", "slices")[0].is_file()
    with pytest.raises(ValueError, match="no split 'test'"):
        m.paths("test", "volumes")
    with pytest.raises(ValueError, match="img_size: expected two positive ints"):
        SliceDataset(m, "train", 0)
    (root / "train_npz/case0005_slice003.npz").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"case0005_slice003\.npz is listed but not on disk"
    ):
        load_manifest(root)
