"""Test-set evaluation and ``predict_file`` end to end on tiny datasets and a tiny MT-UNet."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from mtunet.checkpoint import save_checkpoint
from mtunet.data import nifti
from mtunet.data.common import write_h5, write_npz
from mtunet.evaluation import EvalConfig, evaluate
from mtunet.inference import predict_file, predict_volume
from mtunet.metrics import case_metrics
from mtunet.model import MTUNet, MTUNetConfig

CLASS_NAMES = ["background", "organ_a", "organ_b"]
PREP = {"kind": "ct_window", "hu_min": -125.0, "hu_max": 275.0}
CFG = EvalConfig(batch_size=4, device="cpu", num_qualitative=2)


def _label_volume(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Two box-shaped organs at random places, sizes varying per slice."""
    z, h, w = shape
    label = np.zeros(shape, np.uint8)
    for cls in (1, 2):
        z0 = int(rng.integers(0, z // 2))
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        for s in range(z0, min(z, z0 + int(rng.integers(2, z)))):
            dy, dx = int(rng.integers(3, h // 2)), int(rng.integers(3, w // 2))
            label[s, y0 : y0 + dy, x0 : x0 + dx] = cls
    return label


def make_dataset(
    root: Path,
    shapes: list[tuple[int, int, int]],
    spacing: bool = True,
    geometry: bool = True,
    source: str = "raw",
) -> Path:
    """A processed dataset in the contract's layout: ``dataset.json`` + ``test_vol_h5``."""
    rng = np.random.default_rng(42)
    root.mkdir(parents=True, exist_ok=True)
    volumes, cases = [], []
    for i, shape in enumerate(shapes):
        case = f"case{i + 1:04d}"
        label = _label_volume(rng, shape)
        image = (0.3 * label + 0.2 * rng.random(shape)).astype(np.float32)
        attrs: dict[str, Any] = {}
        if spacing:
            attrs["spacing"] = np.array([3.0, 0.8, 0.7])
        if geometry:
            z, h, w = shape
            affine = np.diag([-0.7, -0.8, 3.0, 1.0])
            attrs.update(nifti.geometry_for(affine, (w, h, z)).to_attrs())
        rel = f"test_vol_h5/{case}.npy.h5"
        write_h5(root / rel, {"image": image, "label": label}, attrs)
        volumes.append(rel)
        cases.append(case)
    # A few training slices: what the intensity-only baseline is fitted on.
    label = _label_volume(rng, (3, 32, 32))
    image = (0.3 * label + 0.2 * rng.random(label.shape)).astype(np.float32)
    slices = [f"train_npz/case0009_slice{k:03d}.npz" for k in range(3)]
    for k, rel in enumerate(slices):
        write_npz(root / rel, {"image": image[k], "label": label[k]})
    manifest = {
        "name": "synapse",
        "source": source,
        "modality": "CT",
        "num_classes": len(CLASS_NAMES),
        "class_names": CLASS_NAMES,
        "preprocessing": PREP,
        "splits": {
            "train": {"cases": ["case0009"], "slices": slices},
            "test": {"cases": cases, "volumes": volumes},
        },
    }
    (root / "dataset.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return root / "dataset.json"


def make_checkpoint(
    path: Path,
    num_classes: int = 3,
    class_names: list[str] | None = None,
    in_channels: int = 1,
    constant_class: int | None = None,
    dataset: str = "synapse",
    preprocessing: dict[str, Any] | None = None,
) -> Path:
    """A tiny MT-UNet saved with ``mtunet.checkpoint``; optionally predicting one class."""
    torch.manual_seed(0)
    cfg = MTUNetConfig(
        num_classes=num_classes, in_channels=in_channels, img_size=32, width_mult=0.125
    )
    model = MTUNet(cfg)
    if constant_class is not None:
        with torch.no_grad():
            model.SegmentationHead.weight.zero_()
            model.SegmentationHead.bias.zero_()
            model.SegmentationHead.bias[constant_class] = 10.0
    payload = {
        "format": "mtunet-checkpoint",
        "version": 1,
        "model_config": cfg.to_dict(),
        "train_config": {},
        "data": {
            "dataset": dataset,
            "num_classes": num_classes,
            "class_names": class_names or CLASS_NAMES[:num_classes],
            "in_channels": in_channels,
            "modality": "CT",
            "preprocessing": preprocessing or PREP,
            "img_size": [32, 32],
        },
        "epoch": 3,
        "global_step": 30,
        "model": dict(model.state_dict()),
        "optimizer": None,
        "rng": None,
        "selection": {"rule": "last", "epoch": 3, "val_dice": None},
    }
    save_checkpoint(path, payload)
    return path


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    return 2.0 * float((pred & gt).sum()) / float(pred.sum() + gt.sum())


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    manifest = make_dataset(tmp_path / "data", [(5, 40, 36), (4, 32, 32), (6, 28, 44)])
    ckpt = make_checkpoint(tmp_path / "model.pt")
    return {
        "manifest": manifest,
        "ckpt": ckpt,
        "metrics": tmp_path / "metrics" / "synapse.json",
        "per_case": tmp_path / "eval" / "per_case.csv",
        "out": tmp_path / "eval",
    }


def _run(study: dict[str, Path], cfg: EvalConfig = CFG, **kw: Any) -> dict[str, Any]:
    return evaluate(
        study["ckpt"],
        study["manifest"],
        cfg,
        study["metrics"],
        study["per_case"],
        study["out"],
        **kw,
    )


def _volume(root: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(root / "test_vol_h5" / f"{case}.npy.h5", "r") as f:
        return f["image"][()], f["label"][()]


def test_evaluate_outputs_match_direct_computation(study: dict[str, Path]) -> None:
    summary = _run(study)
    # Files exist and agree with the returned summary.
    on_disk = json.loads(study["metrics"].read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["n_cases"] == 3
    assert summary["model_selection"] == {"rule": "last", "epoch": 3, "val_dice": None}
    assert summary["data_source"] == "raw"
    assert summary["empty_policy"] == "published"
    assert set(summary["per_class"]) == {"organ_a", "organ_b"}

    df = pd.read_csv(study["per_case"])
    assert list(df.columns) == [
        "case", "class_id", "class_name", "dice", "hd95", "hd95_mm", "hd95_monai",
        "hd95_monai_mm", "nsd", "convention",
    ]  # fmt: skip
    assert len(df) == 3 * 2
    assert list(df["class_name"].unique()) == ["organ_a", "organ_b"]

    # Recompute every case directly: the model, predict_volume and the metrics.
    from mtunet.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(study["ckpt"])
    root = study["manifest"].parent
    for case in ("case0001", "case0002", "case0003"):
        image, gt = _volume(root, case)
        pred = predict_volume(model, image, 32)
        rows = case_metrics(pred, gt, 3, spacing=(3.0, 0.8, 0.7))
        got = df[df["case"] == case].sort_values("class_id")
        for row, (_, g) in zip(rows, got.iterrows(), strict=True):
            assert g["class_id"] == row["class_id"]
            assert g["convention"] == row["convention"]
            np.testing.assert_allclose(g["dice"], row["dice"], rtol=1e-12)
            np.testing.assert_allclose(g["hd95"], row["hd95"], rtol=1e-12)
            np.testing.assert_allclose(g["hd95_mm"], row["hd95_mm"], rtol=1e-12)
            for col in ("hd95_monai", "hd95_monai_mm", "nsd"):
                np.testing.assert_allclose(g[col], row[col], rtol=1e-12)
            if row["convention"] == "both":
                k = row["class_id"]
                np.testing.assert_allclose(g["dice"], _dice(pred == k, gt == k), rtol=1e-12)
    # The summary is the mean over cases, then over classes, in %.
    mean_a = df[df["class_id"] == 1]["dice"].mean() * 100
    mean_b = df[df["class_id"] == 2]["dice"].mean() * 100
    np.testing.assert_allclose(summary["per_class"]["organ_a"]["dsc"], mean_a, rtol=1e-9)
    np.testing.assert_allclose(summary["dsc"], (mean_a + mean_b) / 2, rtol=1e-9)

    # The intensity-only baseline: its rule chosen off the test split, then scored on it.
    from mtunet.baseline import threshold_baseline_dice

    auto = threshold_baseline_dice(study["manifest"], rule="auto")
    assert summary["threshold_baseline"]["rule"] == auto["rule"]
    assert summary["threshold_baseline"]["selected_on"] in ("train", "val")
    assert summary["threshold_baseline"]["dsc"] == auto["dsc"]
    assert set(summary["threshold_baseline"]["per_class"]) == {"organ_a", "organ_b"}


def test_constant_model_gives_known_dice(study: dict[str, Path], tmp_path: Path) -> None:
    # A head that predicts organ_a everywhere: Dice_a = 2|A| / (|A| + N), organ_b empty.
    make_checkpoint(study["ckpt"], constant_class=1)
    summary = _run(study)
    df = pd.read_csv(study["per_case"])
    root = study["manifest"].parent
    for case in ("case0001", "case0002", "case0003"):
        _, gt = _volume(root, case)
        a = df[(df["case"] == case) & (df["class_id"] == 1)].iloc[0]
        b = df[(df["case"] == case) & (df["class_id"] == 2)].iloc[0]
        expected = 2 * (gt == 1).sum() / ((gt == 1).sum() + gt.size)
        np.testing.assert_allclose(a["dice"], expected, rtol=1e-12)
        assert a["convention"] == "both"
        # Published convention: an empty prediction scores (Dice 0, HD95 0).
        assert b["convention"] == "pred_empty" and b["dice"] == 0 and b["hd95"] == 0
    assert summary["empty_mask_cases"]["pred_empty"] == 3
    assert summary["per_class"]["organ_b"]["dsc"] == 0

    # The "nan" policy leaves those classes out of the means instead.
    summary = _run(study, EvalConfig(device="cpu", empty_policy="nan"))
    assert summary["empty_policy"] == "nan"
    df = pd.read_csv(study["per_case"])
    assert df[df["class_id"] == 2]["hd95"].isna().all()


def test_qualitative_slices(study: dict[str, Path]) -> None:
    _run(study, EvalConfig(device="cpu", num_qualitative=2))
    with np.load(study["out"] / "qualitative.npz", allow_pickle=False) as q:
        data = {k: q[k] for k in q.files}
    # First and last case (spread evenly), the slice with most ground-truth foreground.
    assert list(data["case"]) == ["case0001", "case0003"]
    assert data["image"].dtype == np.float32 and data["gt"].dtype == np.uint8
    assert data["pred"].dtype == np.uint8
    # Different slice sizes are zero-padded to a common size; ``shape`` keeps the true one.
    assert data["image"].shape == (2, 40, 44) == data["gt"].shape == data["pred"].shape
    np.testing.assert_array_equal(data["shape"], [[40, 36], [28, 44]])
    root = study["manifest"].parent
    for k, case in enumerate(data["case"]):
        image, gt = _volume(root, str(case))
        s = int(data["slice"][k])
        assert s == int(np.argmax((gt > 0).sum(axis=(1, 2))))
        h, w = gt.shape[1:]
        np.testing.assert_array_equal(data["image"][k, :h, :w], image[s])
        np.testing.assert_array_equal(data["gt"][k, :h, :w], gt[s])
        assert not data["gt"][k, h:, :].any() and not data["gt"][k, :, w:].any()

    _run(study, EvalConfig(device="cpu", num_qualitative=0))
    with np.load(study["out"] / "qualitative.npz", allow_pickle=False) as q:
        assert q["image"].shape[0] == 0 and q["case"].shape == (0,)


def test_save_predictions_in_source_geometry(study: dict[str, Path]) -> None:
    _run(study, EvalConfig(device="cpu", save_predictions=True))
    from mtunet.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(study["ckpt"])
    root = study["manifest"].parent
    image, _ = _volume(root, "case0001")
    img = nib.load(study["out"] / "predictions" / "case0001.nii.gz")
    z, h, w = image.shape
    assert img.shape == (w, h, z)  # the source voxel order recorded in the volume
    np.testing.assert_allclose(img.affine, np.diag([-0.7, -0.8, 3.0, 1.0]))
    vol = nifti.read_volume(study["out"] / "predictions" / "case0001.nii.gz")
    np.testing.assert_array_equal(vol.image, predict_volume(model, image, 32))
    assert sorted(p.name for p in (study["out"] / "predictions").iterdir()) == [
        "case0001.nii.gz", "case0002.nii.gz", "case0003.nii.gz"
    ]  # fmt: skip


def test_rerun_is_byte_identical_and_drops_stale_predictions(study: dict[str, Path]) -> None:
    cfg = EvalConfig(device="cpu", save_predictions=True)
    _run(study, cfg)
    files = [study["metrics"], study["per_case"], study["out"] / "qualitative.npz"]
    first = [f.read_bytes() for f in files]
    pred_dir = study["out"] / "predictions"
    (pred_dir / "case0099.nii.gz").write_bytes(b"left by an older run")
    _run(study, cfg)
    assert [f.read_bytes() for f in files] == first
    assert not (pred_dir / "case0099.nii.gz").exists()
    # No temporary files are left behind.
    assert not [p for p in study["out"].rglob("*") if p.name.endswith(".tmp")]
    _run(study, CFG)  # without save_predictions the old label maps go too
    assert not pred_dir.exists()


def test_data_source(study: dict[str, Path]) -> None:
    assert _run(study, data_source="release")["data_source"] == "release"
    with pytest.raises(ValueError, match="data_source"):
        _run(study, data_source="phantom")
    # Phantoms leave phantoms.json in the raw folder the manifest was made from.
    manifest = study["manifest"]
    data = json.loads(manifest.read_text())
    data["source_info"] = {"input_dir": "../raw"}
    manifest.write_text(json.dumps(data))
    assert _run(study)["data_source"] == "raw"
    (manifest.parent.parent / "raw").mkdir()
    (manifest.parent.parent / "raw" / "phantoms.json").write_text("{}")
    assert _run(study)["data_source"] == "synthetic"
    assert json.loads(study["metrics"].read_text())["data_source"] == "synthetic"


def test_volume_without_spacing_warns_and_omits_mm(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path / "d", [(4, 32, 32), (3, 24, 40)], spacing=False)
    ckpt = make_checkpoint(tmp_path / "m.pt")
    with pytest.warns(UserWarning, match=r"no voxel spacing") as record:
        summary = evaluate(
            ckpt, manifest, CFG, tmp_path / "m.json", tmp_path / "pc.csv", tmp_path / "ev"
        )
    messages = [str(w.message) for w in record if "no voxel spacing" in str(w.message)]
    assert messages == [  # once per run, not once per volume
        f"{manifest}: 2 of 2 volumes have no voxel spacing (case0001, case0002); HD95 in mm "
        "is omitted for them, and their HD95 and surface Dice are in voxels"
    ]
    assert summary["hd95_mm"] is None
    assert all(v["hd95_mm"] is None for v in summary["per_class"].values())
    assert pd.read_csv(tmp_path / "pc.csv")["hd95_mm"].isna().all()
    assert json.loads((tmp_path / "m.json").read_text())["hd95_mm"] is None


def test_spacing_present_gives_mm(study: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no spacing warning here
        summary = _run(study)
    assert summary["hd95_mm"] is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 4, "class_names": ["bg", "x", "y", "z"]}, "predicts 4 classes"),
        ({"in_channels": 3}, "in_channels=3"),
        ({"class_names": ["background", "liver", "organ_b"]}, "class names differ"),
        ({"preprocessing": {"kind": "minmax"}}, "preprocessing differs"),
    ],
)
def test_checkpoint_data_mismatch(study: dict[str, Path], kwargs: dict, match: str) -> None:
    make_checkpoint(study["ckpt"], **kwargs)
    with pytest.raises(ValueError, match=match) as info:
        _run(study)
    # The message names both files.
    assert str(study["ckpt"]) in str(info.value) and str(study["manifest"]) in str(info.value)
    assert not study["metrics"].exists() and not study["per_case"].exists()


def test_missing_and_corrupt_checkpoint(study: dict[str, Path], tmp_path: Path) -> None:
    study["ckpt"] = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        _run(study)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    study["ckpt"] = bad
    with pytest.raises(ValueError, match=r"bad\.pt"):
        _run(study)
    assert not study["metrics"].exists()


def test_bad_config_type(study: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="cfg"):
        _run(study, {"batch_size": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cpu_kernels: must be one of \['native'"):
        EvalConfig(cpu_kernels="fast")  # type: ignore[arg-type]


def test_cpu_kernels_and_threads_are_pinned_before_the_checkpoint_is_read(
    study: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forward passes run on the configured kernels and threads, set before any arithmetic."""
    import mtunet.checkpoint
    import mtunet.evaluation

    calls: list[str] = []
    monkeypatch.setattr(mtunet.evaluation, "pin_cpu_kernels", lambda mode: calls.append(mode))
    monkeypatch.setattr(mtunet.evaluation, "pin_threads", lambda n: calls.append(f"threads {n}"))
    load = mtunet.checkpoint.load_checkpoint

    def loading(*args: Any, **kw: Any) -> Any:
        calls.append("load")
        return load(*args, **kw)

    monkeypatch.setattr(mtunet.checkpoint, "load_checkpoint", loading)
    _run(study, dataclasses.replace(CFG, cpu_kernels="compatible", threads=3))
    assert calls[:3] == ["compatible", "threads 3", "load"]


# --------------------------------------------------------------------------------------
# predict_file
# --------------------------------------------------------------------------------------


def _scan(path: Path, shape: tuple[int, int, int] = (30, 26, 5)) -> tuple[np.ndarray, np.ndarray]:
    """A small int16 CT-like NIfTI with a non-canonical (axis-swapping, flipped) affine."""
    rng = np.random.default_rng(3)
    data = rng.integers(-300, 400, size=shape).astype(np.int16)
    # Voxel axis 0 runs posterior->anterior... i.e. axes permuted and flipped w.r.t. RAS.
    affine = np.array(
        [[0.0, -0.8, 0.0, 10.0], [0.9, 0.0, 0.0, -20.0], [0.0, 0.0, -3.0, 40.0], [0, 0, 0, 1.0]]
    )
    nib.save(nib.Nifti1Image(data, affine), path)
    return data, affine


def test_predict_file_round_trip(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.pt")
    data, affine = _scan(tmp_path / "scan.nii.gz")
    out = predict_file(ckpt, tmp_path / "scan.nii.gz", tmp_path / "seg.nii.gz", device="cpu",
                       batch_size=2, progress=False)  # fmt: skip
    assert out == tmp_path / "seg.nii.gz"
    seg = nib.load(out)
    assert seg.shape == data.shape
    np.testing.assert_allclose(seg.affine, affine)
    labels = np.asarray(seg.dataobj)
    assert labels.dtype == np.uint8 and labels.max() < 3

    # The same as predicting the canonical volume by hand and mapping it back.
    from mtunet.checkpoint import model_from_checkpoint
    from mtunet.data import normalize

    model, _ = model_from_checkpoint(ckpt)
    vol = nifti.read_volume(tmp_path / "scan.nii.gz", orientation="canonical")
    expected = predict_volume(model, normalize(vol.image, PREP), 32)
    np.testing.assert_array_equal(labels, vol.geometry.from_zhw(expected))
    assert vol.geometry.axes != (0, 1, 2)  # the test really reorients


@pytest.mark.slow
def test_predict_file_official_state_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bare state_dict (the authors' release format) needs the dataset to know the classes.
    # The full-size network is slow on a CPU: one forward pass, observed through a spy.
    import mtunet.inference as inference

    torch.manual_seed(0)
    model = MTUNet(MTUNetConfig(num_classes=4))
    sd = tmp_path / "official.pth"
    torch.save(model.state_dict(), sd)
    rng = np.random.default_rng(0)
    scan = rng.random((24, 20, 1)).astype(np.float32) * 500  # MR-like, min-max scaled
    nib.save(nib.Nifti1Image(scan, np.diag([1.5, 1.5, 8.0, 1.0])), tmp_path / "mr.nii.gz")
    with pytest.raises(ValueError, match="dataset="):
        predict_file(sd, tmp_path / "mr.nii.gz", tmp_path / "o.nii.gz", device="cpu")
    with pytest.raises(ValueError, match=r"does not fit|not the authors"):
        predict_file(sd, tmp_path / "mr.nii.gz", tmp_path / "o.nii.gz", device="cpu",
                     dataset="synapse", progress=False)  # fmt: skip

    calls: list[dict[str, Any]] = []
    real = inference.predict_volume

    def spy(
        net: torch.nn.Module, image: np.ndarray, img_size: Any, *a: Any, **k: Any
    ) -> np.ndarray:
        out = real(net, image, img_size, *a, **k)
        calls.append({"net": net, "image": image.copy(), "img_size": img_size, "out": out})
        return out

    monkeypatch.setattr(inference, "predict_volume", spy)
    out = predict_file(sd, tmp_path / "mr.nii.gz", tmp_path / "o.nii.gz", device="cpu",
                       dataset="acdc", progress=False, batch_size=2)  # fmt: skip
    (call,) = calls
    # The official network with the released weights, at the authors' 224 x 224.
    assert tuple(call["img_size"]) == (224, 224)
    assert call["net"].config.num_classes == 4
    for name, value in model.state_dict().items():
        torch.testing.assert_close(call["net"].state_dict()[name], value, rtol=0, atol=0)
    # ACDC volumes keep their voxel order, (Z, H, W) = data.transpose(2, 1, 0), min-max scaled.
    norm = (scan - scan.min()) / (scan.max() - scan.min())
    np.testing.assert_allclose(call["image"], norm.transpose(2, 1, 0), rtol=0, atol=1e-6)
    seg = nib.load(out)
    assert seg.shape == scan.shape
    np.testing.assert_allclose(seg.affine, np.diag([1.5, 1.5, 8.0, 1.0]))
    labels = np.asarray(seg.dataobj)
    assert labels.max() < 4
    np.testing.assert_array_equal(labels, call["out"].transpose(2, 1, 0))


def test_predict_file_bad_input(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.pt")
    _scan(tmp_path / "scan.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        predict_file(tmp_path / "missing.pt", tmp_path / "scan.nii.gz", tmp_path / "o.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"nothere\.nii\.gz"):
        predict_file(ckpt, tmp_path / "nothere.nii.gz", tmp_path / "o.nii.gz")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(ValueError, match=r"bad\.pt"):
        predict_file(bad, tmp_path / "scan.nii.gz", tmp_path / "o.nii.gz")
    with pytest.raises(ValueError, match="dataset"):
        predict_file(ckpt, tmp_path / "scan.nii.gz", tmp_path / "o.nii.gz", dataset="brats")
    with pytest.raises(ValueError, match="trained on 'synapse'"):
        predict_file(ckpt, tmp_path / "scan.nii.gz", tmp_path / "o.nii.gz", dataset="acdc")
    with pytest.raises(ValueError, match=r"o\.png: the output must be a NIfTI"):
        predict_file(ckpt, tmp_path / "scan.nii.gz", tmp_path / "o.png")
    with pytest.raises(ValueError, match="device"):
        predict_file(ckpt, tmp_path / "scan.nii.gz", tmp_path / "o.nii.gz", device="gpu0")
    # A NaN voxel: the error names the scan, not only what normalisation found.
    voxels = np.full((8, 8, 3), 10.0, np.float32)
    voxels[2, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), tmp_path / "nan_scan.nii.gz")
    with pytest.raises(ValueError, match=r"nan_scan\.nii\.gz: .*non-finite"):
        predict_file(ckpt, tmp_path / "nan_scan.nii.gz", tmp_path / "o.nii.gz", device="cpu")
    assert not (tmp_path / "o.nii.gz").exists()
