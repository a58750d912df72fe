"""Every model of the registry trains through the same loop, and its checkpoint rebuilds it for
evaluation and ``predict``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from training_data import make_dataset

from mtunet.checkpoint import load_checkpoint, model_from_checkpoint
from mtunet.inference import predict_file
from mtunet.model.registry import ModelSpec
from mtunet.training import TrainConfig, train

SHARED = {"img_size": 32, "width_mult": 0.125}


def _train(tmp_path: Path, spec: ModelSpec) -> tuple[Path, dict]:
    data = make_dataset(tmp_path / "data", n_train=6, n_val_volumes=1)
    cfg = TrainConfig(epochs=1, batch_size=3, lr=1e-3, device="cpu", progress=False, seed=3)
    out = tmp_path / "run"
    info = train(cfg, spec, data, out, None)
    return out / "model.pt", info


@pytest.fixture
def user_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def build(in_channels, num_classes, img_size, hidden=4):
                return nn.Sequential(
                    nn.Conv2d(in_channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden),
                    nn.ReLU(), nn.Conv2d(hidden, num_classes, 1),
                )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "userpkg.nets:build"
    for mod in ("userpkg", "userpkg.nets"):
        sys.modules.pop(mod, None)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet", "attention_unet", "user"])
def test_model_trains_and_its_checkpoint_rebuilds_it(
    tmp_path: Path, name: str, request: pytest.FixtureRequest
) -> None:
    kwargs = {}
    if name == "user":
        name = request.getfixturevalue("user_factory")
        kwargs = {"hidden": 6}
    spec = ModelSpec.from_params({**SHARED, "kwargs": kwargs}, name=name)
    ckpt_path, info = _train(tmp_path, spec)
    assert info["model_name"] == name and info["model_kwargs"] == kwargs
    assert info["complexity"]["params"] > 0 and info["complexity"]["gflops"] > 0
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["model_name"] == name
    model, _ = model_from_checkpoint(ckpt_path)
    # The rebuilt network holds the trained weights and computes what they compute.
    built = spec.with_data(1, 4).build()
    built.load_state_dict(ckpt["model"])
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(model(x), built.eval()(x))
    assert model(x).shape == (2, 4, 32, 32)

    # `mtunet predict` on a new scan with this checkpoint.
    scan = tmp_path / "scan.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((40, 40, 3)).astype(np.float32), np.eye(4)), scan)
    out = predict_file(ckpt_path, scan, tmp_path / "seg.nii.gz", device="cpu", progress=False)
    labels = np.asarray(nib.load(out).dataobj)
    assert labels.shape == (40, 40, 3) and labels.max() < 4


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path: Path) -> None:
    """A `last.pt` of MT-UNet is never resumed as a U-Net with the same shared settings."""
    from mtunet.training.state import config_differences

    expected = {
        "train_config": {},
        "model_config": {},
        "data": {},
        "world_size": 1,
        "model_name": "unet",
        "model_kwargs": {},
    }
    old = {"train_config": {}, "model_config": {}, "data": {}, "world_size": 1}
    assert config_differences(old, expected) == ["model_name: 'mtunet' -> 'unet'"]
    same = {**old, "model_name": "unet", "model_kwargs": {}}
    assert config_differences(same, expected) == []
