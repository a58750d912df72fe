"""SliceDataset / VolumeDataset, the augmentation, normalize and the manifest loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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


def test_augment_ops() -> None:
    img = np.arange(20, dtype=np.float32).reshape(4, 5)
    lab = (img % 3).astype(np.uint8)
    seen = set()
    for s in range(60):
        rng = sample_rng(1, 0, s)
        out_i, out_l = augment(img, lab, rng)
        seen.add(out_i.shape)
        # rot90/flip keep the multiset of values; rotation by order 0 keeps the label set
        assert set(np.unique(out_l)) <= set(np.unique(lab))
    assert seen == {(4, 5), (5, 4)}  # rot90 by an odd k swaps the sides
    # The published branch probabilities: 1/2 rot+flip, 1/4 rotation, 1/4 unchanged.
    first = [sample_rng(0, 0, i).random() > 0.5 for i in range(2000)]
    assert 0.45 < np.mean(first) < 0.55
    ri, rl = resize(img, lab, (8, 10))
    assert ri.shape == (8, 10) and rl.shape == (8, 10) and rl.dtype == np.uint8


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
