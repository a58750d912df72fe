"""What every ACDC layout reader shares: the config and split, patient names, validating
readers, and the two conversions between 2-D slices and 3-D volumes.

The layout readers (:mod:`mtunet.data.acdc_raw`, :mod:`mtunet.data.acdc_release`,
:mod:`mtunet.data.acdc_ssl4mis`) import this module and none of one another;
:mod:`mtunet.data.acdc` imports them all to pick one.

Slices and volumes:

- :func:`stack_slices` writes one case's slice files, in slice-number order
  (``slice_10`` after ``slice_9``), as one volume file: where a split needs volumes
  (validation, test) and a copy holds the case as slices only.
- :func:`cut_volume` writes a volume's slices as ``<case>_sliceNNN.npz``: where the
  training split needs slices and a copy holds the case as a volume only.

Both write into the output folder (atomically), never into the input folder, and cutting a
volume then stacking its slices gives the volume back exactly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mtunet.config import check, from_dict, to_dict
from mtunet.data.common import (
    check_image,
    check_labels,
    missing_cases_error,
    read_slice,
    read_volume,
    write_h5,
    write_npz,
)

#: MT-UNet's validation and test patients (the other 70 of 001-100 train).
ACDC_VAL_PATIENTS: tuple[int, ...] = (19, 21, 29, 33, 41, 50, 61, 71, 76, 80)
ACDC_TEST_PATIENTS: tuple[int, ...] = (
    2, 3, 8, 9, 12, 14, 17, 24, 42, 48, 49, 53, 55, 64, 67, 79, 81, 88, 92, 95,
)  # fmt: skip
ACDC_ALL_PATIENTS: tuple[int, ...] = tuple(range(1, 101))
ACDC_MAX_ID = 3

_SLICE_NUMBER_RE = re.compile(r"(\d+)\.(?:npz|h5)$")


@dataclass(frozen=True)
class AcdcConfig:
    """How to build the ACDC dataset folder (``params.yaml``: datasets.acdc.preprocess).

    Attributes:
        source: ``"raw"``, ``"release"`` (MT-UNet's files), ``"ssl4mis"`` (SSL4MIS's
            ``data/*.h5`` and ``*.list`` files) or ``"auto"`` (release when ``lists_ACDC``
            exists, else SSL4MIS when ``data/`` holds ``patientXXX_frameYY*.h5`` files, has
            a ``*.list`` file beside it or a ``data/slices/`` folder, else raw).
        split: SSL4MIS only: ``"mtunet"`` (default; by patient, the ``*_patients`` below)
            or ``"layout"`` (the layout's own ``train_slices.list`` / ``train.list``,
            ``val.list`` and ``test.list``). Raw data has no lists of its own, and
            MT-UNet's release is always indexed by its lists (which are MT-UNet's split).
        train_patients: Training patient numbers; empty (default) means every patient of
            001-100 not in validation or test (MT-UNet's 70).
        val_patients: Validation patients (MT-UNet's 10).
        test_patients: Test patients (MT-UNet's 20).
        phases: Cardiac phases used, from ``("ED", "ES")``.
        allow_missing_cases: Skip (and record) split patients not on disk instead of
            raising FileNotFoundError (for phantom sets holding a subset of patients).
        orientation: ``"voxel"`` (default; short-axis stacks) or ``"canonical"``.
        verify_release: Release and SSL4MIS: read and validate every indexed file (files
            the indexer writes, stacked or cut, are always validated).
    """

    source: Literal["auto", "raw", "release", "ssl4mis"] = "auto"
    split: Literal["mtunet", "layout"] = "mtunet"
    train_patients: tuple[int, ...] = ()
    val_patients: tuple[int, ...] = ACDC_VAL_PATIENTS
    test_patients: tuple[int, ...] = ACDC_TEST_PATIENTS
    phases: tuple[str, ...] = ("ED", "ES")
    allow_missing_cases: bool = False
    orientation: Literal["canonical", "voxel"] = "voxel"
    verify_release: bool = True

    def __post_init__(self) -> None:
        for name in ("train_patients", "val_patients", "test_patients"):
            ids = getattr(self, name)
            check(all(i > 0 for i in ids), name, f"patient numbers must be positive, got {ids}")
            check(len(set(ids)) == len(ids), name, f"duplicate patient numbers in {ids}")
        check(len(self.test_patients) > 0, "test_patients", "needs at least one patient")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = sorted(set(getattr(self, f"{a}_patients")) & set(getattr(self, f"{b}_patients")))
            check(not both, f"{b}_patients", f"patients {both} are also in {a}_patients")
        check(
            len(self.phases) > 0
            and set(self.phases) <= {"ED", "ES"}
            and len(set(self.phases)) == len(self.phases),
            "phases",
            f"must be distinct values from ['ED', 'ES'], got {list(self.phases)}",
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "preprocess") -> AcdcConfig:
        return from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "minmax"}

    def train_set(self) -> tuple[int, ...]:
        """Training patients (the default: 001-100 minus validation and test)."""
        if self.train_patients:
            return self.train_patients
        taken = set(self.val_patients) | set(self.test_patients)
        return tuple(p for p in ACDC_ALL_PATIENTS if p not in taken)

    def wanted(self) -> dict[str, tuple[int, ...]]:
        """Split name (``train`` / ``val`` / ``test``) -> its patient numbers."""
        return {"train": self.train_set(), "val": self.val_patients, "test": self.test_patients}


def patient_name(num: int) -> str:
    """``2`` -> ``"patient002"``."""
    return f"patient{num:03d}"


# --------------------------------------------------------------------------------------
# Validating readers
# --------------------------------------------------------------------------------------


def read_checked_slice(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A slice file's ``(image float32 (H, W), label uint8 (H, W))`` after checking it
    (finite image, label ids 0..3); errors name the file."""
    image, label = read_slice(path)
    check_image(image, path)
    return image, check_labels(label, ACDC_MAX_ID, path).astype(np.uint8)


def read_checked_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A volume file's ``(image float32 (Z, H, W), label uint8 (Z, H, W))`` after
    checking it (finite image, label ids 0..3); errors name the file."""
    image, label, _, _ = read_volume(path)
    check_image(image, path)
    return image, check_labels(label, ACDC_MAX_ID, path).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Slices <-> volumes
# --------------------------------------------------------------------------------------


def slice_number(path: Path) -> int:
    """The slice number ending a slice file name (``case_019_sliceED_3.npz`` -> 3;
    ``patient001_frame01_slice_10.h5`` -> 10).

    Raises:
        ValueError: The name ends in no number.
    """
    m = _SLICE_NUMBER_RE.search(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: no slice number at the end of the file name")
    return int(m.group(1))


def stack_slices(
    case: str, paths: Iterable[Path], out_path: Path, *, complete: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Stack one case's 2-D slice files, in slice-number order, into a volume file.

    Every slice is read and validated (finite image, label ids 0..3); the volume is written
    with :func:`~mtunet.data.common.write_h5` (atomic, byte-identical on reruns), with no
    ``spacing`` attribute (slices carry none) and the stacked file names as ``source_slices``.

    Args:
        case: Case id (named in errors).
        paths: The case's slice files (any order).
        out_path: Volume file to write, e.g. ``val_vol_h5/case_019_ED.npy.h5``.
        complete: Require the numbers ``0 .. n-1`` (a layout that numbers every slice of a
            volume from 0: a gap is a missing file, and the stack would lose that slice).

    Returns:
        ``(image float32 (Z, H, W), label uint8 (Z, H, W))`` as written.

    Raises:
        ValueError: No slices, two slices with one number, a gap (``complete``), slices of
            different shapes, or a slice failing the checks (naming the file).
    """
    numbered = sorted((slice_number(p), str(p), Path(p)) for p in paths)
    if not numbered:
        raise ValueError(f"{case}: no slices to stack into {out_path}")
    for (n1, _, p1), (n2, _, p2) in itertools.pairwise(numbered):
        if n1 == n2:
            raise ValueError(f"{p1} and {p2}: two slices numbered {n1} for case {case}")
    numbers = [n for n, _, _ in numbered]
    if complete and numbers != list(range(len(numbers))):
        gaps = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        raise ValueError(
            f"{numbered[0][2].parent}: case {case} has slices {numbers[0]}..{numbers[-1]} "
            f"but not {gaps[:10]}; its volume cannot be rebuilt without them"
        )
    images, labels = [], []
    for _, _, path in numbered:
        image, label = read_checked_slice(path)
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"{path}: slice shape {image.shape} differs from {numbered[0][2].name} "
                f"({images[0].shape}); the slices of {case} cannot be stacked"
            )
        images.append(image)
        labels.append(label)
    volume, volume_label = np.stack(images), np.stack(labels)
    names = "\n".join(path.name for _, _, path in numbered)
    write_h5(out_path, {"image": volume, "label": volume_label}, {"source_slices": names})
    return volume, volume_label


def cut_volume(
    case: str,
    image: np.ndarray,
    label: np.ndarray,
    folder: Path,
    numbers: Sequence[int] | None = None,
    source: Path | None = None,
) -> list[Path]:
    """Write slices of one volume as ``folder/<case>_sliceNNN.npz`` (``image``, ``label``).

    Args:
        case: Case id, the file names' stem.
        image: float32 (Z, H, W).
        label: uint8 (Z, H, W).
        folder: Output folder, e.g. ``out_dir/train_npz``.
        numbers: Slice indices to write (default: all ``0 .. Z-1``).
        source: The volume's file, named in errors.

    Returns:
        The written files, in the order of ``numbers``.

    Raises:
        ValueError: A slice number outside ``0 .. Z-1``.
    """
    depth = image.shape[0]
    wanted = range(depth) if numbers is None else numbers
    bad = [z for z in wanted if not 0 <= z < depth]
    if bad:
        raise ValueError(
            f"{source or case}: slices {bad[:10]} asked for, but the volume has {depth} "
            f"(0..{depth - 1})"
        )
    paths = []
    for z in wanted:
        path = folder / f"{case}_slice{z:03d}.npz"
        write_npz(path, {"image": image[z], "label": label[z]})
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


def missing_patients_error(
    where: Path, missing: Sequence[int], wanted: int, found: str, layout: str
) -> FileNotFoundError:
    """:func:`mtunet.data.common.missing_cases_error` for split patients not on disk.

    Args:
        where: The input folder.
        missing: Patient numbers of the split not found, sorted.
        wanted: How many patients the split has.
        found: What is on disk, in words.
        layout: What the layout should look like, in words.
    """
    names = [patient_name(m) for m in missing]
    return missing_cases_error(where, names, wanted, found, layout, what="patients")
