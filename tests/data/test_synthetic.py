"""Phantoms: raw layouts, determinism, anatomy, and the intensity-threshold baseline."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from rawdata_helpers import tree_bytes

from mtunet.baseline import threshold_baseline_dice
from mtunet.data import preprocess
from mtunet.data.synthetic import (
    AcdcPhantomConfig,
    SynapsePhantomConfig,
    phantom_config,
    synapse_case,
    write_acdc_phantoms,
    write_phantoms,
)

SYN = SynapsePhantomConfig(n_train=2, n_test=1, size=48, min_slices=10, max_slices=12)
ACDC = AcdcPhantomConfig(
    n_train=2, n_val=1, n_test=1, size=48, min_slices=5, max_slices=6, n_frames=6
)


def test_synapse_phantoms_layout_and_determinism(tmp_path: Path) -> None:
    s = write_phantoms("synapse", SYN, tmp_path / "a")
    assert s["train_cases"] == ["case0005", "case0040"] and s["test_cases"] == ["case0001"]
    files = tree_bytes(tmp_path / "a")
    assert "RawData/Training/img/img0040.nii.gz" in files
    assert "RawData/Training/label/label0001.nii.gz" in files
    write_phantoms("synapse", SYN, tmp_path / "b")
    assert tree_bytes(tmp_path / "b") == files
    img = nib.load(tmp_path / "a/RawData/Training/img/img0005.nii.gz")
    assert img.get_data_dtype() == np.int16 and img.shape[:2] == (48, 48)
    assert img.affine[0, 0] < 0 and img.affine[1, 1] < 0 < img.affine[2, 2]  # LPS storage
    assert abs(img.affine[2, 2]) != abs(img.affine[0, 0])  # anisotropic
    other = synapse_case(SynapsePhantomConfig(seed=1, size=48, min_slices=10, max_slices=12), 5)[0]
    assert not np.array_equal(other, synapse_case(SYN, 5)[0])


def test_synapse_phantom_anatomy() -> None:
    hu, lab, spacing = synapse_case(SynapsePhantomConfig(size=64, min_slices=24, max_slices=24), 5)
    assert set(np.unique(lab).tolist()) == set(range(14))  # all 13 BTCV structures
    liver, spleen = hu[lab == 6].mean(), hu[lab == 1].mean()
    assert abs(liver - spleen) < 25  # overlapping intensities by design
    cols = np.nonzero(lab == 6)[2].mean(), np.nonzero(lab == 1)[2].mean()
    assert cols[0] < 32 < cols[1]  # liver on the image left (patient's right), spleen right
    assert spacing[0] != spacing[1] and spacing[1] == spacing[2]


def test_acdc_phantoms(tmp_path: Path) -> None:
    s = write_phantoms("acdc", ACDC, tmp_path / "a")
    name = s["train_patients"][0]
    folder = tmp_path / "a/training" / name
    info = dict(line.split(": ") for line in (folder / "Info.cfg").read_text().splitlines())
    assert set(info) == {"ED", "ES", "Group", "Height", "NbFrame", "Weight"}
    ed, es = int(info["ED"]), int(info["ES"])
    cine = np.asarray(nib.load(folder / f"{name}_4d.nii.gz").dataobj)
    assert cine.shape[3] == 6 == int(info["NbFrame"])
    frame = np.asarray(nib.load(folder / f"{name}_frame{es:02d}.nii.gz").dataobj)
    np.testing.assert_array_equal(frame, cine[..., es - 1])
    gt_ed = np.asarray(nib.load(folder / f"{name}_frame{ed:02d}_gt.nii.gz").dataobj)
    gt_es = np.asarray(nib.load(folder / f"{name}_frame{es:02d}_gt.nii.gz").dataobj)
    assert set(np.unique(gt_ed).tolist()) == {0, 1, 2, 3}
    assert (gt_es == 3).sum() < 0.8 * (gt_ed == 3).sum()  # contraction
    # The stage draws patients in several processes; one process writes the same bytes.
    write_acdc_phantoms(ACDC, tmp_path / "b", workers=1)
    write_acdc_phantoms(ACDC, tmp_path / "c", workers=3)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b") == tree_bytes(tmp_path / "c")


def test_phantom_config_errors() -> None:
    with pytest.raises(ValueError, match="phantoms: unknown key"):
        phantom_config("synapse", {"sizes": 3})
    with pytest.raises(ValueError, match="max_slices"):
        SynapsePhantomConfig(min_slices=10, max_slices=5)
    with pytest.raises(ValueError, match="n_test"):
        phantom_config("acdc", {"n_test": 21})


@pytest.mark.parametrize("name", ["synapse", "acdc"])
def test_phantoms_preprocess_and_baseline_is_beatable(tmp_path: Path, name: str) -> None:
    cfg = SYN if name == "synapse" else ACDC
    write_phantoms(name, cfg, tmp_path / "raw")
    m = preprocess(name, {"allow_missing_cases": True}, tmp_path / "raw", tmp_path / "out")
    assert m["counts"]["train"]["cases"] >= 2 and m["counts"]["test"]["volumes"] >= 1
    for rule in ("map", "balanced"):
        base = threshold_baseline_dice(tmp_path / "out", rule=rule)
        assert 0.0 <= base["dsc"] < 50.0  # intensity alone is far from enough
        assert len(base["per_class"]) == m["num_classes"] - 1
