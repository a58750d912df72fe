"""The phantoms' configs (``params.yaml``: ``datasets.<ds>.phantoms``) and the ids they write.

Case and patient ids are taken from the published splits (spread evenly over each), so the
published split files apply to the phantoms unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtunet.config import check, from_dict_for, to_dict
from mtunet.data.acdc import ACDC_TEST_PATIENTS, ACDC_VAL_PATIENTS
from mtunet.data.synapse import SYNAPSE_TEST_CASES, SYNAPSE_TRAIN_CASES

ACDC_TRAIN_DEFAULT = tuple(
    p for p in range(1, 101) if p not in ACDC_VAL_PATIENTS and p not in ACDC_TEST_PATIENTS
)


@dataclass(frozen=True)
class SynapsePhantomConfig:
    """Synthetic Synapse CT (``params.yaml``: datasets.synapse.phantoms).

    Attributes:
        seed: Base seed; case ``n`` uses ``default_rng([seed, n])``.
        n_train: Cases taken from the published 18 training ids (spread evenly).
        n_test: Cases taken from the published 12 test ids (spread evenly).
        size: In-plane size H = W in voxels (512 for full size).
        min_slices: Fewest axial slices of a case.
        max_slices: Most axial slices of a case.
        noise_hu: Standard deviation of the Gaussian noise (HU).
    """

    seed: int = 0
    n_train: int = 6
    n_test: int = 4
    size: int = 96
    min_slices: int = 16
    max_slices: int = 24
    noise_hu: float = 12.0

    def __post_init__(self) -> None:
        check(
            1 <= self.n_train <= len(SYNAPSE_TRAIN_CASES),
            "n_train",
            f"must be in 1..{len(SYNAPSE_TRAIN_CASES)}, got {self.n_train}",
        )
        check(
            1 <= self.n_test <= len(SYNAPSE_TEST_CASES),
            "n_test",
            f"must be in 1..{len(SYNAPSE_TEST_CASES)}, got {self.n_test}",
        )
        check(self.size >= 32, "size", f"must be at least 32, got {self.size}")
        check(self.min_slices >= 4, "min_slices", f"must be at least 4, got {self.min_slices}")
        check(
            self.max_slices >= self.min_slices,
            "max_slices",
            f"must be >= min_slices ({self.min_slices}), got {self.max_slices}",
        )
        check(self.noise_hu >= 0, "noise_hu", f"must be >= 0, got {self.noise_hu}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def case_ids(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(train ids, test ids) written."""
        return _spread(SYNAPSE_TRAIN_CASES, self.n_train), _spread(SYNAPSE_TEST_CASES, self.n_test)


@dataclass(frozen=True)
class AcdcPhantomConfig:
    """Synthetic ACDC cine MR (``params.yaml``: datasets.acdc.phantoms).

    Attributes:
        seed: Base seed; patient ``n`` uses ``default_rng([seed, 1000 + n])``.
        n_train: Patients taken from MT-UNet's 70 training ids (spread evenly).
        n_val: Patients taken from the 10 validation ids.
        n_test: Patients taken from the 20 test ids.
        size: In-plane size H = W in voxels.
        min_slices: Fewest short-axis slices.
        max_slices: Most short-axis slices.
        n_frames: Frames of the cine (``NbFrame``); ED is frame 1.
        noise: Rician noise level relative to the blood intensity.
    """

    seed: int = 0
    n_train: int = 8
    n_val: int = 2
    n_test: int = 4
    size: int = 96
    min_slices: int = 8
    max_slices: int = 10
    n_frames: int = 12
    noise: float = 0.14

    def __post_init__(self) -> None:
        check(
            1 <= self.n_train <= len(ACDC_TRAIN_DEFAULT),
            "n_train",
            f"must be in 1..{len(ACDC_TRAIN_DEFAULT)}, got {self.n_train}",
        )
        check(
            0 <= self.n_val <= len(ACDC_VAL_PATIENTS),
            "n_val",
            f"must be in 0..{len(ACDC_VAL_PATIENTS)}, got {self.n_val}",
        )
        check(
            1 <= self.n_test <= len(ACDC_TEST_PATIENTS),
            "n_test",
            f"must be in 1..{len(ACDC_TEST_PATIENTS)}, got {self.n_test}",
        )
        check(self.size >= 32, "size", f"must be at least 32, got {self.size}")
        check(self.min_slices >= 3, "min_slices", f"must be at least 3, got {self.min_slices}")
        check(
            self.max_slices >= self.min_slices,
            "max_slices",
            f"must be >= min_slices ({self.min_slices}), got {self.max_slices}",
        )
        check(self.n_frames >= 4, "n_frames", f"must be at least 4, got {self.n_frames}")
        check(self.noise >= 0, "noise", f"must be >= 0, got {self.noise}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def patient_ids(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(train, val, test) patient numbers written."""
        return (
            _spread(ACDC_TRAIN_DEFAULT, self.n_train),
            _spread(ACDC_VAL_PATIENTS, self.n_val),
            _spread(ACDC_TEST_PATIENTS, self.n_test),
        )


def _spread(ids: tuple[int, ...], n: int) -> tuple[int, ...]:
    """``n`` ids spread evenly over ``ids`` (all when n == len(ids))."""
    if n <= 0:
        return ()
    idx = np.unique(np.round(np.linspace(0, len(ids) - 1, n)).astype(int))
    return tuple(ids[i] for i in idx)


def phantom_config(
    name: str, d: Mapping[str, Any] | None = None
) -> SynapsePhantomConfig | AcdcPhantomConfig:
    """Phantom config of dataset ``name`` from a mapping (unknown keys raise ValueError)."""
    classes = {"synapse": SynapsePhantomConfig, "acdc": AcdcPhantomConfig}
    return from_dict_for(classes, name, d, "phantoms")
