"""Tiny replicas of the preprocessed ACDC layouts users hold, written with numpy / h5py
directly (independent of the code under test)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


def frame_names(patients: Iterable[int]) -> list[str]:
    """The layout's frame names of ``patients`` (``patient001_frame01``, ...)."""
    return [f"patient{p:03d}_frame{f:02d}" for p in patients for f in FRAMES]


def ssl4mis_copy(
    root: Path,
    patients: Iterable[int] = PATIENTS,
    *,
    as_volumes: Iterable[int] | None = None,
    as_slices: Iterable[int] | None = None,
    slices_dir: str = "data/slices",
    shape: tuple[int, int, int] = SHAPE,
    lists: Mapping[str, Iterable[int]] = LAYOUT_LISTS,
) -> Arrays:
    """Write a tiny SSL4MIS ACDC copy with h5py directly.

    Args:
        root: The layout folder (``data/`` and the ``*.list`` files go here).
        patients: Patients whose frames are drawn.
        as_volumes: Patients written as ``data/<frame>.h5`` volumes (default: all).
        as_slices: Patients written as ``<slices_dir>/<frame>_slice_N.h5`` (default: all).
        slices_dir: ``"data/slices"`` (SSL4MIS's script) or ``"data"`` (flat public copies).
        shape: (Z, H, W) of every frame.
        lists: The layout's own split (split -> patients) for its ``*.list`` files.

    Returns:
        Frame name -> (image float32 (Z, H, W) in [0, 1], label uint8 (Z, H, W)), every
        frame drawn, whichever way it was written.
    """
    patients = tuple(patients)
    vols = set(patients if as_volumes is None else as_volumes)
    slices = set(patients if as_slices is None else as_slices)
    rng = np.random.default_rng(0)
    arrays = {}
    for p in patients:
        for name in frame_names([p]):
            image = rng.random(shape).astype(np.float32)
            image = (image - image.min()) / (image.max() - image.min())
            label = rng.integers(0, 4, shape).astype(np.uint8)
            if p in vols:
                h5_pair(root / "data" / f"{name}.h5", image, label)
            if p in slices:
                for z in range(shape[0]):
                    h5_pair(root / slices_dir / f"{name}_slice_{z}.h5", image[z], label[z])
            arrays[name] = (image, label)

    def write(list_name: str, names: list[str]) -> None:
        (root / list_name).write_text("".join(f"{n}\n" for n in names))

    write("train.list", frame_names(lists["train"]))
    write("val.list", frame_names(lists["val"]))
    write("test.list", frame_names(lists["test"]))
    slice_names = [f"{n}_slice_{z}" for n in frame_names(lists["train"]) for z in range(shape[0])]
    write("train_slices.list", slice_names)
    return arrays


def ssl4mis_layout(root: Path, patients: tuple[int, ...] = PATIENTS) -> dict[str, np.ndarray]:
    """The canonical tiny copy (every patient as volumes and in ``data/slices/``); returns
    frame name -> image."""
    return {name: image for name, (image, _) in ssl4mis_copy(root, patients).items()}


def mtunet_release(
    root: Path,
    val: tuple[str, ...] = ("case_019_sliceED_0",),
    train: tuple[str, ...] = ("case_001_sliceED_0", "case_001_sliceES_1"),
    test: tuple[str, ...] = ("case_002_volume_ED",),
) -> Arrays:
    """Write a tiny MT-UNet ACDC release: the named files under ``train/``, ``valid/`` and
    ``test/`` (a name with ``_volume`` a (4, 10, 12) volume, any other a (10, 12) slice),
    listed in ``lists_ACDC/``; returns file stem -> (img, label) as written."""
    rng = np.random.default_rng(1)
    arrays = {}
    (root / "lists_ACDC").mkdir(parents=True)
    for sub, names, list_name in (
        ("train", train, "train.txt"),
        ("valid", val, "valid.txt"),
        ("test", test, "test.txt"),
    ):
        (root / sub).mkdir()
        for n in names:
            if "_volume" in n:
                img, label = rng.random((4, 10, 12)), rng.integers(0, 4, (4, 10, 12))
            else:
                img = rng.random((10, 12)).astype(np.float32)
                label = rng.integers(0, 4, (10, 12)).astype(np.uint8)
            np.savez(root / sub / f"{n}.npz", img=img, label=label)
            arrays[n] = (img, label)
        (root / "lists_ACDC" / list_name).write_text("".join(f"{n}.npz\n" for n in names))
    return arrays
