"""PyTorch datasets over a ``dataset.json`` folder: 2-D training slices and 3-D volumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mtunet.data.common import (
    check_labels,
    read_slice,
    read_volume,
    slice_case_name,
    volume_case_name,
)
from mtunet.data.manifest import Manifest, load_manifest
from mtunet.data.transforms import augment as augment_slice
from mtunet.data.transforms import resize, sample_rng


def _as_manifest(manifest: Manifest | str | Path) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


class SliceDataset(Dataset):
    """2-D slices of one split, with the published augmentation.

    Args:
        manifest: A :class:`Manifest` or a path to dataset.json / its folder.
        split: ``"train"``, ``"val"`` or ``"test"`` (a split with slices).
        img_size: (height, width) every item is resized to.
        augment: Apply the random augmentation (:func:`mtunet.data.transforms.augment`).
        seed: Base of the per-sample generator, ``default_rng([seed, epoch, index])``.

    Items: ``{"image": float32 tensor (1, H, W) in [0, 1], "label": int64 tensor (H, W),
    "case": str}``.

    Raises:
        ValueError: Unknown split, a split without slices, or a bad ``img_size``; when an
            item is read, a label id outside ``[0, num_classes)`` (naming the file).
    """

    def __init__(
        self,
        manifest: Manifest | str | Path,
        split: str,
        img_size: tuple[int, int] | int,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.manifest = _as_manifest(manifest)
        self.paths = self.manifest.paths(split, "slices")
        if not self.paths:
            raise ValueError(f"{self.manifest.path}: split {split!r} has no slices")
        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        size = tuple(int(s) for s in img_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"img_size: expected two positive ints, got {img_size!r}")
        self.split = split
        self.img_size: tuple[int, int] = size  # type: ignore[assignment]
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``index`` as stored: image (H, W) and its label-checked label (H, W).

        The one step of an item that is the same in every epoch (a subclass may keep it).
        """
        path = self.paths[index]
        image, label = read_slice(path)
        # Checked here, once per slice on the host, so the loss never waits for the device.
        return image, check_labels(label, self.manifest.num_classes - 1, path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image, label = self.read(index)
        if self.augment:
            image, label = augment_slice(image, label, sample_rng(self.seed, self.epoch, index))
        image, label = resize(image, label, self.img_size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)),
            "case": slice_case_name(path),
        }


class VolumeDataset(Dataset):
    """3-D volumes of one split (test or validation cases).

    Items: ``{"image": np.float32 (Z, H, W), "label": np.uint8 (Z, H, W), "case": str,
    "spacing": (z, y, x) mm floats or None, "path": str}``.
    """

    def __init__(self, manifest: Manifest | str | Path, split: str) -> None:
        self.manifest = _as_manifest(manifest)
        self.paths = self.manifest.paths(split, "volumes")
        self.split = split

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image, label, spacing, _ = read_volume(path)
        return {
            "image": image,
            "label": label,
            "case": volume_case_name(path),
            "spacing": spacing,
            "path": str(path),
        }
