"""MTUNet end to end on tiny configs: shapes, ablations, gradients, determinism, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mtunet.model import MTUNet, MTUNetConfig

DATA = Path(__file__).parent / "data"


def tiny(**kw: object) -> MTUNetConfig:
    base: dict[str, object] = {"width_mult": 0.125, "img_size": 64}
    base.update(kw)
    return MTUNetConfig(**base)  # type: ignore[arg-type]


# Parameters that get no gradient on purpose: the axial attention's `out` projection (the
# authors' code never applies it) and the Gaussian `bias` (constant along the softmax axis,
# so it cancels; left out of the computation, see mtunet.model.attention.axial_attention).
UNUSED_SUFFIXES = (
    "CSAttention.global_atten.out.weight",
    "CSAttention.global_atten.out.bias",
    "CSAttention.gaussiantrans.bias",
)


def test_default_parameter_count_and_keys() -> None:
    model = MTUNet(MTUNetConfig())
    assert sum(p.numel() for p in model.parameters()) == 79_075_389
    shapes = json.loads((DATA / "state_dict_shapes.json").read_text())
    sd = model.state_dict()
    assert list(sd) == list(shapes)  # same 487 keys, same order
    assert len(sd) == 487
    assert {k: list(v.shape) for k, v in sd.items()} == shapes


@pytest.mark.parametrize(
    ("cfg", "size"),
    [
        (tiny(), (64, 64)),
        (tiny(), (64, 96)),  # non-square: 8x12 token grid
        (tiny(), (72, 88)),  # odd token grids 9x11 through stride-2 layers
        (tiny(), (256, 320)),  # position embedding interpolated 8x8 -> 32x40
        (tiny(win_size=2), (64, 80)),
        (tiny(win_size=7), (64, 64)),  # windows divide none of 8, 4, 2
        (tiny(win_size=1), (32, 48)),
        (tiny(num_classes=4, in_channels=3), (48, 64)),
        (tiny(gaussian=False), (64, 64)),
        (tiny(external_attention=False), (64, 64)),
        (tiny(attention="global"), (64, 96)),
        (tiny(padding="corrected"), (48, 48)),
        (tiny(img_size=(32, 48), width_mult=0.25), (32, 48)),
    ],
)
def test_output_shapes(cfg: MTUNetConfig, size: tuple[int, int]) -> None:
    model = MTUNet(cfg).eval()
    x = torch.rand(2, cfg.in_channels, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, cfg.num_classes, *size)
    assert y.dtype == x.dtype and torch.isfinite(y).all()


def test_ablations_change_structure() -> None:
    keys = set(MTUNet(tiny()).state_dict())
    assert not any("gaussiantrans" in k for k in MTUNet(tiny(gaussian=False)).state_dict())
    no_ea = set(MTUNet(tiny(external_attention=False)).state_dict())
    assert not any("EAttention" in k or "ElayerNorm" in k for k in no_ea)
    glob = set(MTUNet(tiny(attention="global")).state_dict())
    assert not any("win_atten" in k or "dlightconv" in k for k in glob)
    assert "bottleneck.0.CSAttention.attention.query_layer.weight" in glob
    assert no_ea < keys
    wide = MTUNet(tiny(width_mult=0.25))
    narrow = MTUNet(tiny())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wide) > 3 * count(narrow)
    r = tiny().resolved()
    assert narrow.stem.trans_dim.conv.weight.shape[0] == r.encoder_dims[0] == 32


def test_gradients_reach_every_parameter_except_the_unused_ones() -> None:
    # 160x192 keeps every global grid at least 2x2 (the bottleneck's 5x6 pads to 8x8): with
    # a single window the softmax has one entry and q, k would rightly get zero gradient.
    model = MTUNet(tiny(img_size=(160, 192))).train()
    x = torch.rand(2, 1, 160, 192)
    target = torch.randint(0, 9, (2, 160, 192))
    torch.nn.functional.cross_entropy(model(x), target).backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    expected = {n for n, _ in model.named_parameters() if n.endswith(UNUSED_SUFFIXES)}
    assert len(expected) == 3 * 10  # 10 MTMs (2 per encoder block, bottleneck, decoder block)
    assert no_grad == expected
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), n
            assert p.grad.abs().sum() > 0, n


def test_gradients_without_gaussian_or_with_global_attention() -> None:
    for cfg, unused in [
        (tiny(gaussian=False), ("global_atten.out.weight", "global_atten.out.bias")),
        (tiny(attention="global"), ()),
    ]:
        model = MTUNet(cfg)
        model(torch.rand(2, 1, 32, 32)).square().mean().backward()
        no_grad = {n for n, p in model.named_parameters() if p.grad is None}
        assert no_grad == {n for n, _ in model.named_parameters() if n.endswith(unused)}, cfg


def test_determinism_under_seed() -> None:
    def run() -> torch.Tensor:
        torch.manual_seed(123)
        model = MTUNet(tiny())
        x = torch.rand(1, 1, 64, 64)
        return model(x)

    a, b = run(), run()
    assert torch.equal(a, b)
    torch.manual_seed(124)
    assert not torch.equal(MTUNet(tiny())(torch.rand(1, 1, 64, 64)), a)


def test_follows_input_dtype_and_autocast() -> None:
    model = MTUNet(tiny()).eval()
    x = torch.rand(1, 1, 64, 48)
    with torch.no_grad():
        y32 = model(x)
        y64 = model.double()(x.double())
        assert y64.dtype == torch.float64
        torch.testing.assert_close(y64.float(), y32, rtol=1e-4, atol=1e-4)
        model.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yb = model(x)
    assert yb.dtype == torch.bfloat16
    assert ((yb.float() - y32).norm() / y32.norm()) < 0.1


def test_meta_device_forward() -> None:
    model = MTUNet(tiny()).to("meta")
    y = model(torch.empty(2, 1, 64, 80, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 9, 64, 80)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 1, 60, 64), "multiples of 8"),
        ((1, 1, 64, 4), "multiples of 8"),
        ((1, 3, 64, 64), "in_channels=1"),
        ((1, 64, 64), r"\(B, 1, H, W\)"),
    ],
)
def test_bad_input_raises(shape: tuple[int, ...], match: str) -> None:
    model = MTUNet(tiny())
    with pytest.raises(ValueError, match=match):
        model(torch.rand(*shape))


def test_bad_config_type_raises() -> None:
    with pytest.raises(ValueError, match="cfg"):
        MTUNet({"num_classes": 9})  # type: ignore[arg-type]


def test_config_attribute_and_flop_sanity() -> None:
    cfg = tiny()
    model = MTUNet(cfg)
    assert model.config is cfg
    # Position embedding sized from img_size (64 -> 8x8 tokens).
    assert model.stem.position_embedding.shape == (1, 64, 32)
    assert math.isclose(float(model.stem.position_embedding.detach().abs().sum()), 0.0)
