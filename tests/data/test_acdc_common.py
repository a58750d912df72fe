"""Slices <-> volumes and the missing-data message shared by the ACDC readers."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from acdc_layouts import h5_pair

from mtunet.data.acdc_common import cut_volume, missing_patients_error, stack_slices
from mtunet.data.common import FEW_MISSING


def _volume(depth: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.random((depth, 5, 6)).astype(np.float32), rng.integers(0, 4, (depth, 5, 6), np.uint8)


def test_cutting_a_volume_then_stacking_its_slices_gives_it_back(tmp_path: Path) -> None:
    image, label = _volume()
    paths = cut_volume("patient003_frame01", image, label, tmp_path / "train_npz")
    assert [p.name for p in paths[:2]] == [
        "patient003_frame01_slice000.npz",
        "patient003_frame01_slice001.npz",
    ]
    out = tmp_path / "test_vol_h5/patient003_frame01.npy.h5"
    stacked, stacked_label = stack_slices("patient003_frame01", reversed(paths), out)
    np.testing.assert_array_equal(stacked, image)
    np.testing.assert_array_equal(stacked_label, label)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["image"][()], image)
        np.testing.assert_array_equal(f["label"][()], label)
        assert "spacing" not in f.attrs


def test_stacking_follows_the_slice_number_not_the_name(tmp_path: Path) -> None:
    image, label = _volume(12)
    paths = []
    for z in range(12):  # slice_10 and slice_11 sort between slice_1 and slice_2 as text
        paths.append(tmp_path / f"patient003_frame01_slice_{z}.h5")
        h5_pair(paths[-1], image[z], label[z])
    assert sorted(p.name for p in paths)[2] == "patient003_frame01_slice_10.h5"
    stacked, stacked_label = stack_slices(
        "patient003_frame01", sorted(paths), tmp_path / "v.npy.h5", complete=True
    )
    np.testing.assert_array_equal(stacked, image)
    np.testing.assert_array_equal(stacked_label, label)


def test_a_gap_stops_a_complete_stack_and_cut_numbers_are_checked(tmp_path: Path) -> None:
    image, label = _volume(4)
    paths = [tmp_path / f"patient003_frame01_slice_{z}.h5" for z in (0, 1, 3)]
    for z, p in zip((0, 1, 3), paths, strict=True):
        h5_pair(p, image[z], label[z])
    with pytest.raises(ValueError, match=r"patient003_frame01 has slices 0\.\.3 but not \[2\]"):
        stack_slices("patient003_frame01", paths, tmp_path / "v.npy.h5", complete=True)
    assert not (tmp_path / "v.npy.h5").exists()
    # Without `complete` (MT-UNet's release lists what it lists), the three are stacked.
    assert stack_slices("c", paths, tmp_path / "v.npy.h5")[0].shape == (3, 5, 6)
    with pytest.raises(ValueError, match=r"v\.h5: slices \[4\] asked for, but the volume has 4"):
        cut_volume("c", image, label, tmp_path / "cut", [0, 4], tmp_path / "v.h5")


def test_only_a_few_missing_patients_get_the_advice_to_skip(tmp_path: Path) -> None:
    few = missing_patients_error(tmp_path, list(range(1, FEW_MISSING + 1)), 100, "X", "LAYOUT")
    assert "allow_missing_cases: true" in str(few) and "LAYOUT" not in str(few)
    assert f"{FEW_MISSING} patients ['patient001'" in str(few)
    many = missing_patients_error(tmp_path, list(range(1, 71)), 100, "4 patients", "LAYOUT")
    assert "allow_missing_cases" not in str(many)
    assert "(70 of 100); found 4 patients" in str(many) and str(many).endswith("LAYOUT")
    assert "'patient010'] ... are in the split" in str(many)
