"""ACDC: Info.cfg frames, min-max scaling, patient split, errors, MT-UNet's release (and
its validation volumes)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from acdc_layouts import mtunet_release
from rawdata_helpers import acdc_patient, save

from mtunet.data import AcdcConfig, SliceDataset, VolumeDataset, load_manifest, preprocess

CFG = {"train_patients": [1], "val_patients": [19], "test_patients": [2]}


def test_raw_patients_exact_outputs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    frames = acdc_patient(raw, 1, ed=1, es=3)
    acdc_patient(raw, 19, ed=1, es=2)
    test_frames = acdc_patient(raw, 2, ed=2, es=4)
    acdc_patient(raw, 5)  # on disk, not in the split
    m = preprocess("acdc", CFG, raw, tmp_path / "out")
    assert m["splits"]["train"]["cases"] == ["patient001_ED", "patient001_ES"]
    assert m["splits"]["train"]["patients"] == ["patient001"]
    assert m["source_info"]["unused_cases"] == ["patient005"]
    img, gt = frames[3]  # ES of patient 1 is frame 3; shape (6, 5, 3) -> (Z=3, H=5, W=6)
    exp = (img - img.min()) / (img.max() - img.min())
    with np.load(tmp_path / "out/train_npz/patient001_ES_slice002.npz") as f:
        np.testing.assert_allclose(
            f["image"], exp.astype(np.float32).transpose(2, 1, 0)[2], atol=1e-6
        )
        np.testing.assert_array_equal(f["label"], gt.transpose(2, 1, 0)[2])
    img, gt = test_frames[2]
    with h5py.File(tmp_path / "out/test_vol_h5/patient002_ED.npy.h5", "r") as f:
        np.testing.assert_array_equal(f["label"][()], gt.transpose(2, 1, 0))
        np.testing.assert_allclose(f.attrs["spacing"], [10.0, 1.5, 1.5])
        assert int(f.attrs["frame"]) == 2
    assert m["splits"]["val"]["volumes"] == [
        "val_vol_h5/patient019_ED.npy.h5",
        "val_vol_h5/patient019_ES.npy.h5",
    ]
    assert len(m["splits"]["val"]["slices"]) == 6
    assert (tmp_path / "out/lists_ACDC/test.txt").read_text() == "patient002_ED\npatient002_ES\n"
    assert m["class_names"] == ["background", "rv", "myo", "lv"]
    assert VolumeDataset(tmp_path / "out", "val")[1]["case"] == "patient019_ES"


def test_default_split_is_mtunets() -> None:
    cfg = AcdcConfig()
    assert cfg.val_patients == (19, 21, 29, 33, 41, 50, 61, 71, 76, 80)
    assert len(cfg.test_patients) == 20 and 2 in cfg.test_patients and 95 in cfg.test_patients
    train = cfg.train_set()
    assert len(train) == 70 and not set(train) & (set(cfg.val_patients) | set(cfg.test_patients))
    with pytest.raises(ValueError, match="val_patients"):
        AcdcConfig(train_patients=(19,), val_patients=(19,))


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ("ES: 3\nGroup: NOR\n", r"Info\.cfg: no ED entry"),
        ("ED: 1\nGroup: NOR\n", r"Info\.cfg: no ES entry"),
        ("ED: one\nES: 3\n", r"Info\.cfg: ED must be a positive frame number"),
    ],
)
def test_info_cfg_errors(tmp_path: Path, info: str, message: str) -> None:
    acdc_patient(tmp_path / "raw", 1)
    acdc_patient(tmp_path / "raw", 2, info=info)
    with pytest.raises(ValueError, match=message):
        preprocess(
            "acdc",
            {"train_patients": [1], "val_patients": [], "test_patients": [2]},
            tmp_path / "raw",
            tmp_path / "out",
        )


def test_raw_errors(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    acdc_patient(raw, 1)
    acdc_patient(raw, 2)
    cfg = {"train_patients": [1], "val_patients": [], "test_patients": [2]}
    gt = raw / "training/patient002/patient002_frame03_gt.nii.gz"
    gt.unlink()
    with pytest.raises(
        FileNotFoundError, match=r"patient002_frame03\.nii\.gz: image without a label"
    ):
        preprocess("acdc", cfg, raw, tmp_path / "out")
    save(gt, np.full((6, 5, 3), 4, np.uint8), np.eye(4))
    with pytest.raises(
        ValueError, match=r"frame03_gt\.nii\.gz: label values \[4\] outside the expected ids 0\.\.3"
    ):
        preprocess("acdc", cfg, raw, tmp_path / "out")
    with pytest.raises(
        FileNotFoundError,
        match=r"98 patients \['patient003'.* ... are in the split but not on disk",
    ):
        preprocess("acdc", None, raw, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty input folder"):
        preprocess("acdc", None, tmp_path / "empty", tmp_path / "out")


def test_release_indexed(tmp_path: Path) -> None:
    mtunet_release(tmp_path / "rel")
    m = preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")
    assert m["source"] == "release"
    assert m["splits"]["train"]["cases"] == ["case_001_ED", "case_001_ES"]
    assert m["splits"]["val"]["slices"] == ["../rel/valid/case_019_sliceED_0.npz"]
    assert m["splits"]["test"]["volumes"] == ["../rel/test/case_002_volume_ED.npz"]
    # The patients, the unit the test statistics count (a patient's ED and ES together).
    assert m["splits"]["train"]["patients"] == ["case_001"]
    assert m["splits"]["test"]["patients"] == ["case_002"]
    manifest = load_manifest(tmp_path / "out")
    item = SliceDataset(manifest, "train", 16, augment=True, seed=3)[1]
    assert item["image"].shape == (1, 16, 16) and item["case"] == "case_001_ES"
    vol = VolumeDataset(manifest, "test")[0]
    assert vol["image"].dtype == np.float32 and vol["label"].shape == (4, 10, 12)
    assert vol["case"] == "case_002_ED"


def test_release_missing_file(tmp_path: Path) -> None:
    mtunet_release(tmp_path / "rel")
    (tmp_path / "rel/test/case_002_volume_ED.npz").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"test\.txt: lists case_002_volume_ED\.npz, not on disk"
    ):
        preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")


# Out of order, and 10 sorts before 2 as text: the stack must follow the slice numbers.
VAL_SLICES = (
    "case_019_sliceED_10",
    "case_019_sliceED_0",
    "case_019_sliceES_0",
    "case_019_sliceED_2",
    "case_019_sliceES_1",
)


def test_release_validation_slices_become_volumes(tmp_path: Path) -> None:
    mtunet_release(tmp_path / "rel", VAL_SLICES)
    out = tmp_path / "out"
    m = preprocess("acdc", None, tmp_path / "rel", out)
    assert m["splits"]["val"]["volumes"] == [
        "val_vol_h5/case_019_ED.npy.h5",
        "val_vol_h5/case_019_ES.npy.h5",
    ]
    assert len(m["splits"]["val"]["slices"]) == 5  # still listed in place
    assert m["source_info"]["spacing_known"] is False
    vol = VolumeDataset(out, "val")[0]
    assert vol["case"] == "case_019_ED" and vol["spacing"] is None
    expected = []
    for n in ("case_019_sliceED_0", "case_019_sliceED_2", "case_019_sliceED_10"):
        with np.load(tmp_path / "rel/valid" / f"{n}.npz") as f:
            expected.append((f["img"], f["label"]))
    np.testing.assert_array_equal(vol["image"], np.stack([e[0] for e in expected]))
    np.testing.assert_array_equal(vol["label"], np.stack([e[1] for e in expected]))
    first = (out / "val_vol_h5/case_019_ED.npy.h5").read_bytes()
    # Rerun with ES dropped from valid.txt: byte-identical ED volume, stale ES volume removed.
    (tmp_path / "rel/lists_ACDC/valid.txt").write_text(
        "".join(f"{n}.npz\n" for n in VAL_SLICES if "ES" not in n)
    )
    m = preprocess("acdc", None, tmp_path / "rel", out)
    assert m["splits"]["val"]["volumes"] == ["val_vol_h5/case_019_ED.npy.h5"]
    assert m["source_info"]["removed_stale_files"] == ["val_vol_h5/case_019_ES.npy.h5"]
    assert (out / "val_vol_h5/case_019_ED.npy.h5").read_bytes() == first


def test_release_validation_slices_of_other_shapes_are_rejected(tmp_path: Path) -> None:
    mtunet_release(tmp_path / "rel", ("case_019_sliceED_0", "case_019_sliceED_1"))
    bad = tmp_path / "rel/valid/case_019_sliceED_1.npz"
    np.savez(bad, img=np.zeros((8, 12), np.float32), label=np.zeros((8, 12), np.uint8))
    with pytest.raises(ValueError, match=r"case_019_sliceED_1\.npz: slice shape \(8, 12\) differs"):
        preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")
    np.savez(bad, img=np.zeros((10, 12), np.float32), label=np.full((10, 12), 7, np.uint8))
    with pytest.raises(ValueError, match=r"sliceED_1\.npz: label values \[7\] outside"):
        preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")


def test_release_patient_on_two_sides_is_rejected(tmp_path: Path) -> None:
    # A validation slice of patient 001, whose slices are also in train.txt.
    mtunet_release(tmp_path / "rel", ("case_019_sliceED_0", "case_001_sliceES_0"))
    with pytest.raises(ValueError, match=r"\['case_001'\] listed in both train\.txt and valid"):
        preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")
