"""The authors' checkpoint layout and the reference logits of their code."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mtunet.model import MTUNet, MTUNetConfig, load_official_state_dict

DATA = Path(__file__).parent / "data"


def recipe_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Every entry set by the recipe at the end of docs/architecture.md."""
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            t = torch.zeros(shape, dtype=torch.int64)
        elif key.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith(".weight"):
            t = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.1 * torch.randn(shape, generator=g)
        out[key] = t
    return out


@pytest.fixture(scope="module")
def recipe() -> dict[str, torch.Tensor]:
    return recipe_state_dict(json.loads((DATA / "state_dict_shapes.json").read_text()))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "reference_logits.npz") as z:
        return {k: z[k] for k in z.files}


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.slow  # two full-size models on 2 x 224 x 224: ~10-15 s on 2 busy cores
def test_reference_logits(recipe: dict[str, torch.Tensor], reference: dict) -> None:
    model = load_official_state_dict(MTUNet(MTUNetConfig()), recipe).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(reference["input"]))
    assert logits.shape == (2, 9, 224, 224)
    err = rel_l2(logits, torch.from_numpy(reference["logits"]))
    assert err < 1e-5, err
    # The threshold separates: the corrected padding is far off the authors' output.
    corrected = load_official_state_dict(MTUNet(MTUNetConfig(padding="corrected")), recipe)
    with torch.no_grad():
        other = corrected.eval()(torch.from_numpy(reference["input"]))
    assert rel_l2(other, torch.from_numpy(reference["logits"])) > 1e-3


def test_input_is_the_documented_one(reference: dict) -> None:
    x = torch.rand((2, 1, 224, 224), generator=torch.Generator().manual_seed(1234))
    assert torch.equal(x, torch.from_numpy(reference["input"]))


@pytest.mark.slow  # full-size model on 256 x 320
def test_checkpoint_runs_on_other_sizes(recipe: dict[str, torch.Tensor]) -> None:
    model = load_official_state_dict(MTUNet(MTUNetConfig()), recipe).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 1, 256, 320))
    assert y.shape == (1, 9, 256, 320) and torch.isfinite(y).all()


def test_load_from_file_with_dataparallel_prefix(tmp_path: Path) -> None:
    # A tiny model keeps the file small; the loading logic does not depend on the size.
    cfg = MTUNetConfig(width_mult=0.125, img_size=64)
    source = MTUNet(cfg).state_dict()
    path = tmp_path / "best_model.pth"
    torch.save({f"module.{k}": v for k, v in source.items()}, path)
    model = load_official_state_dict(MTUNet(cfg), path)
    key = "bottleneck.1.CSAttention.gaussiantrans.shift"
    assert torch.equal(model.state_dict()[key], source[key])
    assert not torch.equal(MTUNet(cfg).state_dict()[key], source[key])  # a fresh one differs
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": source, "epoch": torch.tensor(3)}, wrapped)
    model = load_official_state_dict(MTUNet(cfg), str(wrapped))
    assert torch.equal(model.state_dict()[key], source[key])


def test_load_errors_list_the_problems(tmp_path: Path, recipe: dict[str, torch.Tensor]) -> None:
    model = MTUNet(MTUNetConfig())
    bad = dict(recipe)
    del bad["stem.trans_dim.conv.weight"]
    bad["extra.weight"] = torch.zeros(1)
    bad["SegmentationHead.weight"] = torch.zeros(4, 64, 1, 1)
    with pytest.raises(ValueError) as info:
        load_official_state_dict(model, bad)
    msg = str(info.value)
    assert "missing keys (1): stem.trans_dim.conv.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "SegmentationHead.weight (checkpoint (4, 64, 1, 1), model (9, 64, 1, 1))" in msg
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_official_state_dict(model, tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth"):
        load_official_state_dict(model, junk)
    with pytest.raises(ValueError, match="not a state dict"):
        load_official_state_dict(model, {})
