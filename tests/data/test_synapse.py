"""Synapse: raw NIfTI to slices/volumes, the label map, splits, errors, releases."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from rawdata_helpers import save, synapse_case, tree_bytes

from mtunet.data import SliceDataset, SynapseConfig, VolumeDataset, load_manifest, preprocess
from mtunet.data import common as common_mod

SMALL = {"train_cases": [5], "test_cases": [1]}
# Written out independently of the code: BTCV -> 8-organ class.
EXPECTED_MAP = {
    0: 0,
    1: 7,
    2: 4,
    3: 3,
    4: 2,
    5: 0,
    6: 5,
    7: 8,
    8: 1,
    9: 0,
    10: 0,
    11: 6,
    12: 0,
    13: 0,
}


def _expected(hu: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source order (LPS storage) -> (Z, H, W) radiological, by hand."""
    img = (np.clip(hu.astype(np.float32), -125, 275) + 125) / 400
    mapped = np.vectorize(EXPECTED_MAP.get)(lab).astype(np.uint8)
    return img.transpose(2, 1, 0), mapped.transpose(2, 1, 0)


def test_raw_case_exact_outputs(tmp_path: Path) -> None:
    hu5, lab5 = synapse_case(tmp_path / "raw", 5)
    hu1, lab1 = synapse_case(tmp_path / "raw", 1)
    out = tmp_path / "out"
    m = preprocess("synapse", SMALL, tmp_path / "raw", out)
    img, lab = _expected(hu5, lab5)
    assert m["splits"]["train"]["slices"] == [
        f"train_npz/case0005_slice{z:03d}.npz" for z in range(4)
    ]
    for z in range(4):
        with np.load(out / f"train_npz/case0005_slice{z:03d}.npz") as f:
            assert f["image"].dtype == np.float32 and f["label"].dtype == np.uint8
            np.testing.assert_allclose(f["image"], img[z], atol=1e-7)
            np.testing.assert_array_equal(f["label"], lab[z])
    img, lab = _expected(hu1, lab1)
    with h5py.File(out / "test_vol_h5/case0001.npy.h5", "r") as f:
        np.testing.assert_allclose(f["image"][()], img, atol=1e-7)
        np.testing.assert_array_equal(f["label"][()], lab)
        np.testing.assert_allclose(f.attrs["spacing"], [2.5, 0.8, 0.8])
    assert (out / "lists_Synapse/train.txt").read_text().splitlines()[0] == "case0005_slice000"
    assert (out / "lists_Synapse/test_vol.txt").read_text() == "case0001\n"
    assert m["class_names"][1] == "aorta" and m["num_classes"] == 9
    assert m["shapes"]["test"]["case0001"] == [4, 5, 6]
    assert sum(m["class_voxels"]["test"].values()) == hu1.size
    # The manifest loads, and the volume writes back in the source geometry.
    vol = VolumeDataset(load_manifest(out), "test")[0]
    assert vol["case"] == "case0001" and vol["spacing"] == pytest.approx((2.5, 0.8, 0.8))
    from mtunet.data import nifti

    back = nifti.write_volume_prediction(vol, vol["label"], tmp_path / "pred.nii.gz")
    np.testing.assert_array_equal(
        np.asarray(nib.load(back).dataobj), _expected(hu1, lab1)[1].transpose(2, 1, 0)
    )


def test_label_map_every_btcv_id(tmp_path: Path) -> None:
    lab = np.arange(14, dtype=np.uint8).reshape(14, 1, 1).repeat(2, 1)
    hu = np.zeros(lab.shape, np.int16)
    for num in (5, 1):
        save(tmp_path / f"raw/img/img{num:04d}.nii", hu)
        save(tmp_path / f"raw/label/label{num:04d}.nii", lab)
    preprocess("synapse", SMALL, tmp_path / "raw", tmp_path / "out")
    with h5py.File(tmp_path / "out/test_vol_h5/case0001.npy.h5", "r") as f:
        got = f["label"][()]  # (Z=1, H=2, W=14): W runs right -> left = source axis 0
    assert [int(v) for v in got[0, 0, :]] == [EXPECTED_MAP[i] for i in range(14)]


def test_published_split_defaults_and_validation() -> None:
    cfg = SynapseConfig()
    assert cfg.train_cases == (5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40)
    assert cfg.test_cases == (1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38)
    assert cfg.val_cases == ()
    with pytest.raises(ValueError, match="val_cases"):
        SynapseConfig(val_cases=(1,))
    with pytest.raises(ValueError, match="test_cases"):
        SynapseConfig(test_cases=(5,))


def test_validation_split_and_flat_folder(tmp_path: Path) -> None:
    for num in (5, 6, 1):
        synapse_case(tmp_path / "raw", num, layout=".")
    cfg = {"train_cases": [5, 6], "test_cases": [1], "val_cases": [6]}
    m = preprocess("synapse", cfg, tmp_path / "raw", tmp_path / "out")
    assert m["splits"]["train"]["cases"] == ["case0005"]
    assert m["splits"]["val"]["cases"] == ["case0006"]
    assert m["splits"]["val"]["volumes"] == ["val_vol_h5/case0006.npy.h5"]
    assert len(m["splits"]["val"]["slices"]) == 4
    assert (tmp_path / "out/lists_Synapse/val_vol.txt").read_text() == "case0006\n"


def test_rerun_is_byte_identical(tmp_path: Path) -> None:
    for num in (5, 1):
        synapse_case(tmp_path / "raw", num)
    preprocess("synapse", SMALL, tmp_path / "raw", tmp_path / "a")
    first = tree_bytes(tmp_path / "a")
    preprocess("synapse", SMALL, tmp_path / "raw", tmp_path / "a")
    assert tree_bytes(tmp_path / "a") == first
    preprocess("synapse", SMALL, tmp_path / "raw", tmp_path / "b")
    assert tree_bytes(tmp_path / "b").keys() == first.keys()
    assert all(tree_bytes(tmp_path / "b")[k] == v for k, v in first.items() if k != "dataset.json")


def test_interrupted_run_leaves_nothing_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for num in (5, 1):
        synapse_case(tmp_path / "raw", num)
    out = tmp_path / "out"
    preprocess("synapse", SMALL, tmp_path / "raw", out)  # a complete earlier run

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    import mtunet.data.synapse as syn

    monkeypatch.setattr(syn, "write_h5", boom)
    with pytest.raises(KeyboardInterrupt):
        preprocess("synapse", SMALL, tmp_path / "raw", out)
    assert not (out / "dataset.json").exists()
    assert not list(out.rglob("*.tmp"))
    with pytest.raises(FileNotFoundError, match=r"dataset\.json"):
        load_manifest(out)
    # atomic writers: an exception mid-write leaves no file under the final name
    with pytest.raises(RuntimeError):
        common_mod.write_npz(out / "x.npz", {"image": np.zeros(2), "bad": _Exploding()})
    assert not (out / "x.npz").exists() and not list(out.glob(".*.tmp"))


class _Exploding:
    def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("disk full")


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (
            lambda r: (r / "RawData/Training/label/label0005.nii.gz").unlink(),
            FileNotFoundError,
            r"img0005\.nii\.gz: image without a label",
        ),
        (
            lambda r: (r / "RawData/Training/img/img0005.nii.gz").unlink(),
            FileNotFoundError,
            r"label0005\.nii\.gz: label without an image",
        ),
        (
            lambda r: save(
                r / "RawData/Training/label/label0005.nii.gz", np.zeros((6, 5, 3), np.uint8)
            ),
            ValueError,
            r"img0005\.nii\.gz and .*label0005\.nii\.gz: image shape \(6, 5, 4\) does not match",
        ),
        (
            lambda r: save(
                r / "RawData/Training/label/label0005.nii.gz", np.full((6, 5, 4), 14, np.uint8)
            ),
            ValueError,
            r"label0005\.nii\.gz: label values \[14\] outside the expected ids 0\.\.13",
        ),
        (
            lambda r: save(
                r / "RawData/Training/img/img0005.nii.gz",
                np.where(np.eye(6, 5)[..., None], np.nan, 0.0).repeat(4, 2).astype(np.float32),
            ),
            ValueError,
            r"img0005\.nii\.gz: 20 non-finite intensities",
        ),
        (
            lambda r: (r / "RawData/Training/img/img0005.nii.gz").write_bytes(b"\x1f\x8b garbage"),
            ValueError,
            r"img0005\.nii\.gz: unreadable or truncated",
        ),
        (
            lambda r: [
                (r / f"RawData/Training/{k}/{k}0001.nii.gz").unlink() for k in ("img", "label")
            ],
            FileNotFoundError,
            r"cases \['case0001'\] are in the split but not on disk",
        ),
    ],
)
def test_bad_input_errors(tmp_path: Path, mutate, error, message) -> None:  # type: ignore[no-untyped-def]
    raw = tmp_path / "raw"
    for num in (5, 1):
        synapse_case(raw, num)
    mutate(raw)
    with pytest.raises(error, match=message):
        preprocess("synapse", SMALL, raw, tmp_path / "out")
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_empty_and_missing_input_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty input folder"):
        preprocess("synapse", None, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="input folder not found"):
        preprocess("synapse", None, tmp_path / "nothing", tmp_path / "out")


def test_allow_missing_cases_records_them(tmp_path: Path) -> None:
    for num in (5, 1):
        synapse_case(tmp_path / "raw", num)
    m = preprocess("synapse", {"allow_missing_cases": True}, tmp_path / "raw", tmp_path / "out")
    assert m["splits"]["train"]["cases"] == ["case0005"]
    assert len(m["source_info"]["missing_cases"]) == 28


def _fake_release(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "train_npz").mkdir(parents=True)
    for name in ("case0005_slice000", "case0005_slice001", "case0006_slice000"):
        np.savez(
            root / "train_npz" / f"{name}.npz",
            image=rng.random((8, 8)).astype(np.float32),
            label=rng.integers(0, 9, (8, 8)).astype(np.uint8),
        )
    (root / "test_vol_h5").mkdir()
    with h5py.File(root / "test_vol_h5/case0001.npy.h5", "w") as f:
        f["image"] = rng.random((3, 8, 8)).astype(np.float32)
        f["label"] = rng.integers(0, 9, (3, 8, 8)).astype(np.uint8)
    (root / "lists_Synapse").mkdir()
    (root / "lists_Synapse/train.txt").write_text(
        "case0005_slice000\ncase0005_slice001\ncase0006_slice000\n"
    )
    (root / "lists_Synapse/test_vol.txt").write_text("case0001\n")


def test_release_indexed_in_place(tmp_path: Path) -> None:
    _fake_release(tmp_path / "release")
    m = preprocess("synapse", {"val_cases": [6]}, tmp_path / "release", tmp_path / "out")
    assert m["source"] == "release"
    assert m["splits"]["train"]["slices"][0] == "../release/train_npz/case0005_slice000.npz"
    assert m["splits"]["val"]["cases"] == ["case0006"]
    assert m["splits"]["test"]["volumes"] == ["../release/test_vol_h5/case0001.npy.h5"]
    assert not (tmp_path / "out" / "train_npz").exists()  # nothing rewritten
    ds = SliceDataset(load_manifest(tmp_path / "out"), "train", (16, 16), augment=False)
    item = ds[1]
    assert item["image"].shape == (1, 16, 16) and item["case"] == "case0005"
    assert VolumeDataset(tmp_path / "out", "test")[0]["spacing"] is None


def test_release_list_entry_not_on_disk(tmp_path: Path) -> None:
    _fake_release(tmp_path / "release")
    (tmp_path / "release/train_npz/case0006_slice000.npz").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"train\.txt: lists case0006_slice000\.npz, not on disk"
    ):
        preprocess("synapse", None, tmp_path / "release", tmp_path / "out")


def test_release_bad_label_values(tmp_path: Path) -> None:
    _fake_release(tmp_path / "release")
    np.savez(
        tmp_path / "release/train_npz/case0006_slice000.npz",
        image=np.zeros((8, 8), np.float32),
        label=np.full((8, 8), 9, np.uint8),
    )
    with pytest.raises(ValueError, match=r"case0006_slice000\.npz: label values \[9\]"):
        preprocess("synapse", None, tmp_path / "release", tmp_path / "out")


def test_many_missing_cases_say_what_was_found_not_skip(tmp_path: Path) -> None:
    """Skipping is suggested for a few missing cases only; most of a split missing means the
    folder is not what the reader expects, and the error says what it found and looks for."""
    raw = tmp_path / "raw"
    synapse_case(raw, 5)
    synapse_case(raw, 1)
    many = {**SMALL, "train_cases": [5, 6, 7, 9, 10, 21, 23], "test_cases": [1, 2, 3]}
    with pytest.raises(FileNotFoundError) as err:
        preprocess("synapse", many, raw, tmp_path / "out")
    text = str(err.value)
    assert "8 cases ['case0002', 'case0003', 'case0006'" in text and "(8 of 10)" in text
    assert "found 2 cases with an image and a label" in text
    assert "allow_missing_cases" not in text and "RawData/Training/img/imgXXXX.nii.gz" in text
    few = {**SMALL, "train_cases": [5, 6], "test_cases": [1]}
    with pytest.raises(FileNotFoundError, match=r"allow_missing_cases: true"):
        preprocess("synapse", few, raw, tmp_path / "out")
