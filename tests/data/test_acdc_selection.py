"""Every ACDC layout (raw, MT-UNet's release, SSL4MIS) gives the trainer validation volumes,
so ``selection: auto`` keeps the best-validation epoch (ACDC's published rule)."""

from __future__ import annotations

from pathlib import Path

import pytest
from acdc_layouts import mtunet_release, ssl4mis_layout
from rawdata_helpers import acdc_patient

from mtunet.data import VolumeDataset, preprocess
from mtunet.model import MTUNetConfig
from mtunet.training import TrainConfig, train


def _layout(kind: str, root: Path) -> dict[str, object]:
    """Write a tiny layout of ``kind`` under ``root``; returns the preprocess config."""
    if kind == "raw":
        for p in (1, 19, 2):
            acdc_patient(root, p)
        return {"train_patients": [1], "val_patients": [19], "test_patients": [2]}
    if kind == "release":
        mtunet_release(root, ("case_019_sliceED_0", "case_019_sliceED_1", "case_019_sliceES_0"))
        return {}
    ssl4mis_layout(root)
    return {"allow_missing_cases": True}


@pytest.mark.parametrize("kind", ["raw", "release", "ssl4mis"])
def test_every_layout_has_validation_volumes(tmp_path: Path, kind: str) -> None:
    cfg = _layout(kind, tmp_path / "in")
    m = preprocess("acdc", cfg, tmp_path / "in", tmp_path / "out")
    assert len(m["splits"]["val"]["volumes"]) == 2  # ED and ES of the validation patient
    volumes = VolumeDataset(tmp_path / "out", "val")
    assert all(volumes[i]["image"].ndim == 3 for i in range(len(volumes)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["raw", "release", "ssl4mis"])
def test_auto_selection_uses_validation(tmp_path: Path, kind: str) -> None:
    cfg = _layout(kind, tmp_path / "in")
    preprocess("acdc", cfg, tmp_path / "in", tmp_path / "data")
    res = train(
        TrainConfig(
            epochs=2,
            batch_size=2,
            lr=1e-3,
            device="cpu",
            progress=False,
            seed=7,
            max_steps_per_epoch=1,
        ),
        MTUNetConfig(width_mult=0.125, img_size=32),
        tmp_path / "data",
        tmp_path / "run",
        None,
    )
    assert res["selection"]["rule"] == "best_val" and res["selection"]["split"] == "val"
    assert all(0.0 <= h["val_dice"] <= 1.0 for h in res["history"])
    best = max(res["history"], key=lambda h: h["val_dice"])
    assert res["selection"]["val_dice"] == best["val_dice"]
