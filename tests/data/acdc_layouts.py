"""Tiny replicas of the preprocessed ACDC layouts users hold, written with numpy / h5py
directly (independent of the code under test)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

FRAMES = (1, 12)
SHAPE = (3, 10, 12)
# MT-UNet's split puts 1 and 4 in training, 19 in validation, 2 in test; the layout's own
# lists below put 2 in training, 4 in validation, 19 in test.
PATIENTS = (1, 2, 4, 19)
LAYOUT_LISTS = {"train": (1, 2), "val": (4,), "test": (19,)}


def h5_pair(path: Path, image: np.ndarray, label: np.ndarray) -> None:
    """Write an SSL4MIS-style .h5 with datasets ``image`` and ``label``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["image"] = image
        f["label"] = label


def ssl4mis_layout(root: Path, patients: tuple[int, ...] = PATIENTS) -> dict[str, np.ndarray]:
    """Write a tiny SSL4MIS ACDC folder (h5py directly); returns frame name -> image."""
    rng = np.random.default_rng(0)
    images = {}
    for p in patients:
        for fr in FRAMES:
            name = f"patient{p:03d}_frame{fr:02d}"
            image = rng.random(SHAPE).astype(np.float32)
            image = (image - image.min()) / (image.max() - image.min())
            label = rng.integers(0, 4, SHAPE).astype(np.uint8)
            h5_pair(root / "data" / f"{name}.h5", image, label)
            for z in range(SHAPE[0]):
                h5_pair(root / "data/slices" / f"{name}_slice_{z}.h5", image[z], label[z])
            images[name] = image

    def names(split: str) -> list[str]:
        return [f"patient{p:03d}_frame{f:02d}" for p in LAYOUT_LISTS[split] for f in FRAMES]

    (root / "train.list").write_text("".join(f"{n}\n" for n in names("train")))
    (root / "val.list").write_text("".join(f"{n}\n" for n in names("val")))
    (root / "test.list").write_text("".join(f"{n}\n" for n in names("test")))
    slices = [f"{n}_slice_{z}" for n in names("train") for z in range(SHAPE[0])]
    (root / "train_slices.list").write_text("".join(f"{s}\n" for s in slices))
    return images


def mtunet_release(root: Path, val: tuple[str, ...] = ("case_019_sliceED_0",)) -> None:
    """Write a tiny MT-UNet ACDC release: two training slices, ``val`` validation slices
    (10 x 12) and one test volume."""
    rng = np.random.default_rng(1)
    for sub, names in (
        ("train", ["case_001_sliceED_0", "case_001_sliceES_1"]),
        ("valid", list(val)),
    ):
        (root / sub).mkdir(parents=True)
        for n in names:
            np.savez(
                root / sub / f"{n}.npz",
                img=rng.random((10, 12)).astype(np.float32),
                label=rng.integers(0, 4, (10, 12)).astype(np.uint8),
            )
    (root / "test").mkdir()
    np.savez(
        root / "test/case_002_volume_ED.npz",
        img=rng.random((4, 10, 12)),
        label=rng.integers(0, 4, (4, 10, 12)),
    )
    (root / "lists_ACDC").mkdir()
    (root / "lists_ACDC/train.txt").write_text("case_001_sliceED_0.npz\ncase_001_sliceES_1.npz\n")
    (root / "lists_ACDC/valid.txt").write_text("".join(f"{n}.npz\n" for n in val))
    (root / "lists_ACDC/test.txt").write_text("case_002_volume_ED.npz\n")
