"""ACDC as public copies hold it: any patient as volumes, as slices (in ``data/`` or
``data/slices/``) or both; what a split needs and a copy lacks is stacked or cut into the
output folder, and the indexed arrays are exactly the ones the copy holds."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from acdc_layouts import (
    LAYOUT_LISTS,
    PATIENTS,
    SHAPE,
    Arrays,
    frame_names,
    mtunet_release,
    ssl4mis_copy,
)
from rawdata_helpers import acdc_patient, tree_bytes

from mtunet.data import preprocess
from mtunet.data.acdc_common import ACDC_TEST_PATIENTS, ACDC_VAL_PATIENTS

# The patients of each split, by split setting, for the 4-patient copy.
SPLITS = {
    "mtunet": {"train": (1, 4), "val": (19,), "test": (2,)},
    "layout": {k: tuple(v) for k, v in LAYOUT_LISTS.items()},
}
CONFIGS = {"mtunet": {"allow_missing_cases": True}, "layout": {"split": "layout"}}
_NUMBER_RE = re.compile(r"(\d+)\.(?:h5|npz)$")


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) of a slice or volume file, read with h5py / numpy directly."""
    if path.suffix == ".npz":
        with np.load(path) as f:
            return f["image"], f["label"]
    with h5py.File(path, "r") as f:
        return f["image"][()], f["label"][()]


def check_against_copy(
    m: dict[str, Any], out: Path, arrays: Arrays, split: Mapping[str, Iterable[int]]
) -> None:
    """Every training slice and every validation / test volume the manifest lists is the
    array the copy holds, and each split has all of its frames (every slice for training)."""
    train: dict[tuple[str, int], Path] = {}
    for entry in m["splits"]["train"]["slices"]:
        path = out / entry
        key = (path.name[:18], int(_NUMBER_RE.search(path.name).group(1)))
        assert key not in train, f"{entry}: slice listed twice"
        train[key] = path
    frames = frame_names(split["train"])
    assert sorted(train) == [(f, z) for f in frames for z in range(len(arrays[f][0]))]
    for (frame, z), path in train.items():
        image, label = _arrays(path)
        np.testing.assert_array_equal(image, arrays[frame][0][z])
        np.testing.assert_array_equal(label, arrays[frame][1][z])
    for s in ("val", "test"):
        volumes = [out / v for v in m["splits"][s]["volumes"]]
        assert [v.name[:18] for v in volumes] == frame_names(split[s])
        for path in volumes:
            image, label = _arrays(path)
            np.testing.assert_array_equal(image, arrays[path.name[:18]][0])
            np.testing.assert_array_equal(label, arrays[path.name[:18]][1])


def _flat_partial(
    root: Path,
    patients: tuple[int, ...] = PATIENTS,
    lists: Mapping[str, Iterable[int]] = LAYOUT_LISTS,
    shape: tuple[int, int, int] = SHAPE,
) -> Arrays:
    """SSL4MIS's own training patients as slices only, flat in data/; the others as
    volumes only (how public copies hold the layout)."""
    train = set(lists["train"])
    return ssl4mis_copy(
        root,
        patients,
        as_volumes=[p for p in patients if p not in train],
        as_slices=[p for p in patients if p in train],
        slices_dir="data",
        shape=shape,
        lists=lists,
    )


@pytest.mark.parametrize("split", ["mtunet", "layout"])
@pytest.mark.parametrize("arrangement", ["canonical", "flat_partial"])
def test_both_arrangements_with_both_splits(tmp_path: Path, arrangement: str, split: str) -> None:
    root, out = tmp_path / "ssl", tmp_path / "out"
    arrays = ssl4mis_copy(root) if arrangement == "canonical" else _flat_partial(root)
    before = tree_bytes(root)
    m = preprocess("acdc", CONFIGS[split], root, out)
    assert m["source_info"]["layout"] == "ssl4mis" and m["source_info"]["split"] == split
    check_against_copy(m, out, arrays, SPLITS[split])
    derived = (
        arrangement == "flat_partial" and split == "mtunet"
    )  # patient 4 (train) is held as volumes only, patient 2 (test) as slices only
    assert m["source_info"]["sliced_cases"] == {
        "train": frame_names([4]) if derived else [],
    }
    assert m["source_info"]["stacked_cases"] == {
        "test": frame_names([2]) if derived else [],
        "val": [],
    }
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = ["dataset.json"]
    if derived:
        expected += [f"test_vol_h5/{n}.npy.h5" for n in frame_names([2])]
        expected += [f"train_npz/{n}_slice{z:03d}.npz" for n in frame_names([4]) for z in range(3)]
    assert written == sorted(expected)
    assert m["source_info"]["written_files"] == sorted(expected[1:])
    found = m["source_info"]["found"]
    assert found["patients"] == 4
    if arrangement == "flat_partial":
        assert found["slice_files_in_data"] == 2 * 2 * SHAPE[0]
        assert found["slice_files_in_data_slices"] == 0 and found["patients_with_both"] == 0
    assert tree_bytes(root) == before  # the copy is never written to


@pytest.mark.slow
def test_a_full_public_copy_with_mtunets_default_split(tmp_path: Path) -> None:
    """All 100 patients as the public copy holds them (its own training patients as slices
    in data/, its validation and test patients as volumes), with the default config."""
    lists = {"train": tuple(range(31, 101)), "val": tuple(range(21, 31)), "test": range(1, 21)}
    shape = (2, 4, 5)
    arrays = _flat_partial(tmp_path / "ssl", tuple(range(1, 101)), lists=lists, shape=shape)
    assert len(list((tmp_path / "ssl/data").glob("*_slice_*.h5"))) == 70 * 2 * 2
    m = preprocess("acdc", None, tmp_path / "ssl", tmp_path / "out")
    mt_train = tuple(p for p in range(1, 101) if p not in ACDC_VAL_PATIENTS + ACDC_TEST_PATIENTS)
    split = {"train": mt_train, "val": ACDC_VAL_PATIENTS, "test": ACDC_TEST_PATIENTS}
    check_against_copy(m, tmp_path / "out", arrays, split)
    assert m["source_info"]["missing_cases"] == []
    # MT-UNet's patients that the copy holds the other way round are derived.
    assert m["source_info"]["sliced_cases"]["train"] == frame_names(p for p in mt_train if p <= 30)
    for s in ("val", "test"):
        assert m["source_info"]["stacked_cases"][s] == frame_names(p for p in split[s] if p > 30)
    assert m["counts"]["train"] == {"cases": 140, "slices": 140 * 2, "volumes": 0}
    assert m["counts"]["test"]["volumes"] == 40 and m["counts"]["val"]["volumes"] == 20

    # Two patients absent: few enough to suggest skipping them, and skipping works.
    for path in (tmp_path / "ssl/data").glob("patient00[56]_*.h5"):
        path.unlink()
    with pytest.raises(FileNotFoundError) as err:
        preprocess("acdc", None, tmp_path / "ssl", tmp_path / "out")
    assert "2 patients ['patient005', 'patient006'] are in the split but not on disk" in str(
        err.value
    )
    assert "found 98 patients" in str(err.value) and "allow_missing_cases: true" in str(err.value)
    m = preprocess("acdc", {"allow_missing_cases": True}, tmp_path / "ssl", tmp_path / "out")
    assert m["source_info"]["missing_cases"] == ["patient005", "patient006"]
    # A rerun with fewer derived files removes the stale ones.
    assert "train_npz/patient005_frame01_slice000.npz" in m["source_info"]["removed_stale_files"]


def test_a_flat_copy_without_lists_is_recognised(tmp_path: Path) -> None:
    arrays = _flat_partial(tmp_path / "ssl")
    for name in ("train_slices.list", "train.list", "val.list", "test.list"):
        (tmp_path / "ssl" / name).unlink()
    m = preprocess("acdc", CONFIGS["mtunet"], tmp_path / "ssl", tmp_path / "out")
    assert m["source_info"]["layout"] == "ssl4mis" and m["source_info"]["lists"] == []
    check_against_copy(m, tmp_path / "out", arrays, SPLITS["mtunet"])


def test_listed_slices_held_only_in_a_volume_are_cut(tmp_path: Path) -> None:
    arrays = ssl4mis_copy(tmp_path / "ssl", as_slices=())  # volumes only
    (tmp_path / "ssl/train_slices.list").write_text(
        "patient001_frame01_slice_2\npatient001_frame01_slice_0\n"
    )
    m = preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")
    assert m["splits"]["train"]["slices"] == [
        "train_npz/patient001_frame01_slice000.npz",
        "train_npz/patient001_frame01_slice002.npz",
    ]
    assert m["source_info"]["sliced_cases"]["train"] == ["patient001_frame01"]
    image, label = _arrays(tmp_path / "out/train_npz/patient001_frame01_slice002.npz")
    np.testing.assert_array_equal(image, arrays["patient001_frame01"][0][2])
    np.testing.assert_array_equal(label, arrays["patient001_frame01"][1][2])
    (tmp_path / "ssl/train_slices.list").write_text("patient001_frame01_slice_7\n")
    with pytest.raises(ValueError, match=r"slices \[7\] asked for, but the volume has 3"):
        preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")


def test_many_missing_patients_say_what_was_found(tmp_path: Path) -> None:
    _flat_partial(tmp_path / "ssl")
    with pytest.raises(FileNotFoundError) as err:
        preprocess("acdc", None, tmp_path / "ssl", tmp_path / "out")
    message = str(err.value)
    assert "96 patients ['patient003'" in message and "(96 of 100)" in message
    assert "allow_missing_cases" not in message
    assert (
        "found 4 patients in " in message
        and ": 2 as volumes (4 files in data/), 2 as slices (12 files in data/, 0 in "
        "data/slices/), 0 as both"
        in message
    )
    assert "The SSL4MIS layout holds data/patientXXX_frameYY.h5" in message
    assert "own lists are all on disk: preprocess.split: layout uses them" in message
    # Raw ACDC: the same rule, with the raw layout described.
    for p in (1, 2):
        acdc_patient(tmp_path / "raw", p)
    with pytest.raises(FileNotFoundError) as err:
        preprocess("acdc", None, tmp_path / "raw", tmp_path / "out")
    message = str(err.value)
    assert "98 patients" in message and "allow_missing_cases" not in message
    assert "found 2 patient folders (patient001, patient002)" in message
    assert "Raw ACDC holds one folder per patient, training/patientXXX/" in message
    # The layout's own lists naming files not on disk: the first, how many, what was found.
    (tmp_path / "ssl/test.list").write_text("patient050_frame01\npatient051_frame01\n")
    with pytest.raises(FileNotFoundError) as err:
        preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")
    assert re.search(
        r"test\.list: lists patient050_frame01, not on disk \(.*\); 1 more listed names are "
        r"not on disk; found 4 patients",
        str(err.value),
    )


def test_slices_held_twice_or_with_a_gap_are_rejected(tmp_path: Path) -> None:
    _flat_partial(tmp_path / "ssl")
    data = tmp_path / "ssl/data"
    (data / "slices").mkdir()
    copy = data / "slices/patient002_frame01_slice_1.h5"
    copy.write_bytes((data / "patient002_frame01_slice_1.h5").read_bytes())
    with pytest.raises(ValueError, match=r"slice 1 of patient002_frame01 is held twice"):
        preprocess("acdc", CONFIGS["mtunet"], tmp_path / "ssl", tmp_path / "out")
    copy.unlink()
    # Patient 2 is MT-UNet's test patient held as slices: a gap cannot be stacked.
    (data / "patient002_frame12_slice_1.h5").unlink()
    with pytest.raises(ValueError, match=r"patient002_frame12 has slices 0\.\.2 but not \[1\]"):
        preprocess("acdc", CONFIGS["mtunet"], tmp_path / "ssl", tmp_path / "out")
    assert not (tmp_path / "out/dataset.json").exists()


# MT-UNet's release: a test case listed as slices only (10 sorts before 2 as text), a
# training case listed as a volume only.
RELEASE_TEST = ("case_002_sliceED_10", "case_002_sliceED_0", "case_002_sliceED_2")
RELEASE_TRAIN = ("case_001_sliceED_0", "case_005_volume_ES")


def test_release_cases_listed_the_other_way_are_stacked_or_cut(tmp_path: Path) -> None:
    arrays = mtunet_release(tmp_path / "rel", train=RELEASE_TRAIN, test=RELEASE_TEST)
    before = tree_bytes(tmp_path / "rel")
    out = tmp_path / "out"
    m = preprocess("acdc", None, tmp_path / "rel", out)
    assert m["source_info"]["stacked_cases"] == {"test": ["case_002_ED"], "val": ["case_019_ED"]}
    assert m["source_info"]["sliced_cases"] == {"train": ["case_005_ES"]}
    assert m["splits"]["test"]["volumes"] == ["test_vol_h5/case_002_ED.npy.h5"]
    image, label = _arrays(out / "test_vol_h5/case_002_ED.npy.h5")
    order = ("case_002_sliceED_0", "case_002_sliceED_2", "case_002_sliceED_10")
    np.testing.assert_array_equal(image, np.stack([arrays[n][0] for n in order]))
    np.testing.assert_array_equal(label, np.stack([arrays[n][1] for n in order]))
    cut = [s for s in m["splits"]["train"]["slices"] if s.startswith("train_npz/")]
    assert cut == [f"train_npz/case_005_ES_slice{z:03d}.npz" for z in range(4)]
    volume, volume_label = arrays["case_005_volume_ES"]
    for z, entry in enumerate(cut):
        image, label = _arrays(out / entry)
        np.testing.assert_array_equal(image, volume[z].astype(np.float32))
        np.testing.assert_array_equal(label, volume_label[z])
    assert m["splits"]["train"]["cases"] == ["case_001_ED", "case_005_ES"]
    assert m["shapes"]["train"]["case_005_ES"] == [4, 10, 12]
    assert tree_bytes(tmp_path / "rel") == before


def test_release_files_not_on_disk_are_counted_and_the_folder_described(tmp_path: Path) -> None:
    mtunet_release(tmp_path / "rel", train=("case_001_sliceED_0", "case_001_sliceED_1"))
    for name in ("train/case_001_sliceED_0.npz", "train/case_001_sliceED_1.npz"):
        (tmp_path / "rel" / name).unlink()
    with pytest.raises(FileNotFoundError) as err:
        preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")
    assert re.search(
        r"train\.txt: lists case_001_sliceED_0\.npz, not on disk \(.*\); 1 more of the 4 "
        r"listed files are missing too; found \.npz files: train/ 0, valid/ 1, test/ 1, the "
        r"folder itself 0\. MT-UNet's release holds lists_ACDC/",
        str(err.value),
    )
