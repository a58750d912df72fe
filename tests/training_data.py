"""A tiny preprocessed dataset in the contract layout, for the training tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtunet.training import TrainConfig


def quick(**kw: Any) -> TrainConfig:
    """The training tests' tiny configuration (2 epochs, batch 4, CPU), with ``kw`` on top."""
    base: dict[str, Any] = {
        "epochs": 2,
        "batch_size": 4,
        "lr": 1e-3,
        "device": "cpu",
        "progress": False,
        "seed": 7,
    }
    base.update(kw)
    return TrainConfig(**base)


def make_dataset(
    root: Path,
    n_train: int = 8,
    n_val_volumes: int = 2,
    num_classes: int = 4,
    size: int = 40,
    seed: int = 0,
) -> Path:
    """Write a tiny preprocessed dataset (contract layout) with disks of each class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]

    def sample() -> tuple[np.ndarray, np.ndarray]:
        label = np.zeros((size, size), np.uint8)
        for c in range(1, num_classes):
            cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(3, 7)
            label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = c
        image = label.astype(np.float32) / num_classes
        image += rng.normal(0, 0.05, image.shape).astype(np.float32)
        return np.clip(image, 0, 1).astype(np.float32), label

    root.mkdir(parents=True, exist_ok=True)
    (root / "train_npz").mkdir(exist_ok=True)
    (root / "val_vol_h5").mkdir(exist_ok=True)
    slices = []
    for i in range(n_train):
        image, label = sample()
        name = f"train_npz/case{i // 4:04d}_slice{i % 4:03d}.npz"
        np.savez(root / name, image=image, label=label)
        slices.append(name)
    volumes = []
    for v in range(n_val_volumes):
        pairs = [sample() for _ in range(3)]
        name = f"val_vol_h5/case{100 + v:04d}.npy.h5"
        with h5py.File(root / name, "w") as f:
            f["image"] = np.stack([p[0] for p in pairs])
            f["label"] = np.stack([p[1] for p in pairs])
            f.attrs["spacing"] = (5.0, 1.0, 1.0)
        volumes.append(name)
    manifest = {
        "name": "acdc",
        "source": "raw",
        "modality": "MR",
        "num_classes": num_classes,
        "class_names": ["background"] + [f"c{c}" for c in range(1, num_classes)],
        "preprocessing": {"kind": "minmax"},
        "splits": {
            "train": {"cases": sorted({s[10:18] for s in slices}), "slices": slices},
            "val": {
                "cases": [v[11:19] for v in volumes],
                "slices": [],
                "volumes": volumes,
            },
            "test": {"cases": [], "volumes": []},
        },
    }
    (root / "dataset.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return root / "dataset.json"
