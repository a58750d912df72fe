"""ACDC: Info.cfg frames, min-max scaling, patient split, errors, MT-UNet's release."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
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


def _fake_release(root: Path) -> None:
    rng = np.random.default_rng(1)
    for sub, names in (
        ("train", ["case_001_sliceED_0", "case_001_sliceES_1"]),
        ("valid", ["case_019_sliceED_0"]),
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
    (root / "lists_ACDC/valid.txt").write_text("case_019_sliceED_0.npz\n")
    (root / "lists_ACDC/test.txt").write_text("case_002_volume_ED.npz\n")


def test_release_indexed(tmp_path: Path) -> None:
    _fake_release(tmp_path / "rel")
    m = preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")
    assert m["source"] == "release"
    assert m["splits"]["train"]["cases"] == ["case_001_ED", "case_001_ES"]
    assert m["splits"]["val"]["slices"] == ["../rel/valid/case_019_sliceED_0.npz"]
    assert m["splits"]["test"]["volumes"] == ["../rel/test/case_002_volume_ED.npz"]
    manifest = load_manifest(tmp_path / "out")
    item = SliceDataset(manifest, "train", 16, augment=True, seed=3)[1]
    assert item["image"].shape == (1, 16, 16) and item["case"] == "case_001_ES"
    vol = VolumeDataset(manifest, "test")[0]
    assert vol["image"].dtype == np.float32 and vol["label"].shape == (4, 10, 12)
    assert vol["case"] == "case_002_ED"


def test_release_missing_file(tmp_path: Path) -> None:
    _fake_release(tmp_path / "rel")
    (tmp_path / "rel/test/case_002_volume_ED.npz").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"test\.txt: lists case_002_volume_ED\.npz, not on disk"
    ):
        preprocess("acdc", None, tmp_path / "rel", tmp_path / "out")
