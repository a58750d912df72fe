"""ACDC in the SSL4MIS layout: detection, the two splits, in-place indexing, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from acdc_layouts import SHAPE, h5_pair, ssl4mis_layout

from mtunet.data import AcdcConfig, SliceDataset, VolumeDataset, load_manifest, preprocess

QUICK = {"allow_missing_cases": True}  # the replica holds 4 of the 100 patients


def _patient(path: str) -> str:
    return Path(path).name[:10]


def test_auto_detects_and_indexes_mtunet_split_in_place(tmp_path: Path) -> None:
    images = ssl4mis_layout(tmp_path / "ssl")
    out = tmp_path / "out"
    m = preprocess("acdc", QUICK, tmp_path / "ssl", out)
    assert m["source"] == "release" and m["source_info"]["layout"] == "ssl4mis"
    assert m["source_info"]["split"] == "mtunet"
    assert {s: m["splits"][s]["patients"] for s in ("train", "val", "test")} == {
        "train": ["patient001", "patient004"],
        "val": ["patient019"],
        "test": ["patient002"],
    }
    train_slices = m["splits"]["train"]["slices"]
    assert len(train_slices) == 2 * 2 * SHAPE[0]
    # No slice of a validation or test patient enters training.
    held_out = set(m["splits"]["val"]["patients"]) | set(m["splits"]["test"]["patients"])
    assert not {_patient(s) for s in train_slices} & held_out
    assert all(s.startswith("../ssl/data/slices/") for s in train_slices)
    assert m["splits"]["val"]["volumes"] == [
        "../ssl/data/patient019_frame01.h5",
        "../ssl/data/patient019_frame12.h5",
    ]
    assert m["splits"]["test"]["cases"] == ["patient002_frame01", "patient002_frame12"]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["dataset.json"]
    assert m["source_info"]["spacing_known"] is False
    assert m["spacings"]["test"]["patient002_frame01"] is None
    assert len(m["source_info"]["missing_cases"]) == 96

    manifest = load_manifest(out)
    item = SliceDataset(manifest, "train", 16)[SHAPE[0]]  # patient001_frame12, slice 0
    assert item["case"] == "patient001_frame12" and item["image"].shape == (1, 16, 16)
    vol = VolumeDataset(manifest, "val")[1]
    assert vol["case"] == "patient019_frame12" and vol["spacing"] is None
    np.testing.assert_array_equal(vol["image"], images["patient019_frame12"])
    # MT-UNet's split needs no list file: data/ with data/slices/ is recognised too.
    for name in ("train_slices.list", "train.list", "val.list", "test.list"):
        (tmp_path / "ssl" / name).unlink()
    again = preprocess("acdc", QUICK, tmp_path / "ssl", out)
    assert again["splits"] == m["splits"] and again["source_info"]["lists"] == []


def test_layout_split_uses_the_lists(tmp_path: Path) -> None:
    ssl4mis_layout(tmp_path / "ssl")
    # Only some of the listed slices: exactly those are trained on.
    listed = ["patient001_frame01_slice_0", "patient002_frame12_slice_2"]
    (tmp_path / "ssl/train_slices.list").write_text("".join(f"{s}\n" for s in listed))
    m = preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")
    assert [Path(s).name for s in m["splits"]["train"]["slices"]] == [f"{s}.h5" for s in listed]
    assert m["splits"]["train"]["patients"] == ["patient001", "patient002"]
    assert m["splits"]["val"]["patients"] == ["patient004"]
    assert m["splits"]["test"]["patients"] == ["patient019"]
    assert m["source_info"]["missing_cases"] == []
    # Without train_slices.list: every slice of the frames in train.list.
    (tmp_path / "ssl/train_slices.list").unlink()
    m = preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")
    assert len(m["splits"]["train"]["slices"]) == 2 * 2 * SHAPE[0]


def test_layout_split_with_a_patient_on_two_sides_is_rejected(tmp_path: Path) -> None:
    ssl4mis_layout(tmp_path / "ssl")
    (tmp_path / "ssl/val.list").write_text("patient004_frame01\npatient002_frame12\n")
    with pytest.raises(ValueError, match=r"patients \['patient002'\] are in both the train and"):
        preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")
    (tmp_path / "ssl/val.list").write_text("patient004_frame01\npatient009_frame01\n")
    with pytest.raises(FileNotFoundError, match=r"val\.list: lists patient009_frame01, not on"):
        preprocess("acdc", {"split": "layout"}, tmp_path / "ssl", tmp_path / "out")


def test_missing_files_are_derived_into_the_output(tmp_path: Path) -> None:
    images = ssl4mis_layout(tmp_path / "ssl")
    for p in (tmp_path / "ssl/data/slices").glob("patient004_frame01_slice_*.h5"):
        p.unlink()  # a training frame with only its volume: cut into slices
    (tmp_path / "ssl/data/patient019_frame12.h5").unlink()  # validation: only slices
    m = preprocess("acdc", QUICK, tmp_path / "ssl", tmp_path / "out")
    cut = [s for s in m["splits"]["train"]["slices"] if s.startswith("train_npz/")]
    assert cut == [f"train_npz/patient004_frame01_slice{z:03d}.npz" for z in range(SHAPE[0])]
    assert m["splits"]["val"]["volumes"][1] == "val_vol_h5/patient019_frame12.npy.h5"
    vol = VolumeDataset(tmp_path / "out", "val")[1]
    np.testing.assert_allclose(vol["image"], images["patient019_frame12"])
    item = SliceDataset(tmp_path / "out", "train", SHAPE[1:])[2 * SHAPE[0] + 1]
    assert item["case"] == "patient004_frame01"
    np.testing.assert_allclose(item["image"][0], images["patient004_frame01"][1], atol=1e-6)


@pytest.mark.parametrize(
    ("target", "image", "label", "message"),
    [
        ("data/slices/patient001_frame01_slice_1.h5", None, np.full((10, 12), 5, np.uint8),
         r"patient001_frame01_slice_1\.h5: label values \[5\] outside the expected ids 0\.\.3"),
        ("data/patient002_frame12.h5", np.full(SHAPE, np.nan, np.float32), None,
         r"patient002_frame12\.h5: 360 non-finite intensities"),
        ("data/patient019_frame01.h5", None, np.zeros((3, 10, 11), np.uint8),
         r"patient019_frame01\.h5: expected 3-D image and label of one shape"),
        ("data/slices/patient004_frame12_slice_0.h5", "truncated", None,
         r"patient004_frame12_slice_0\.h5: unreadable or truncated HDF5"),
        ("data/patient002_frame01.h5", "no label", None,
         r"patient002_frame01\.h5: missing dataset 'label'"),
    ],
    ids=["label-id", "nan", "shape", "truncated", "no-label"],
)  # fmt: skip
def test_bad_files_are_named(
    tmp_path: Path, target: str, image: object, label: np.ndarray | None, message: str
) -> None:
    ssl4mis_layout(tmp_path / "ssl")
    path = tmp_path / "ssl" / target
    if isinstance(image, str) and image == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif isinstance(image, str):  # "no label"
        with h5py.File(path, "a") as f:
            del f["label"]
    else:
        with h5py.File(path, "r") as f:
            old_image, old_label = f["image"][()], f["label"][()]
        h5_pair(path, old_image if image is None else image, old_label if label is None else label)
    with pytest.raises(ValueError, match=message):
        preprocess("acdc", QUICK, tmp_path / "ssl", tmp_path / "out")
    assert not (tmp_path / "out/dataset.json").exists()


def test_split_setting_and_missing_patients(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"preprocess\.split"):
        AcdcConfig.from_dict({"split": "ssl4mis"})
    ssl4mis_layout(tmp_path / "ssl")
    with pytest.raises(FileNotFoundError, match=r"96 patients \['patient003'.* not on disk"):
        preprocess("acdc", None, tmp_path / "ssl", tmp_path / "out")
    with pytest.raises(ValueError, match=r"phases: the SSL4MIS layout does not record"):
        preprocess("acdc", {**QUICK, "phases": ["ED"]}, tmp_path / "ssl", tmp_path / "out")
    (tmp_path / "raw").mkdir()
    with pytest.raises(ValueError, match=r"split: 'layout' needs a layout with its own split"):
        preprocess("acdc", {"split": "layout"}, tmp_path / "raw", tmp_path / "out")
    # An explicit source skips detection: the raw reader does not accept this folder.
    with pytest.raises(ValueError, match="no patientXXX folders"):
        preprocess("acdc", {**QUICK, "source": "raw"}, tmp_path / "ssl", tmp_path / "out")
