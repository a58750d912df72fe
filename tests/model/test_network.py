"""MTUNet end to end on tiny configs: shapes, ablations, gradients, determinism, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

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


def test_config_attribute_and_position_embedding() -> None:
    cfg = tiny()
    model = MTUNet(cfg)
    assert model.config is cfg
    # Position embedding sized from img_size (64 -> 8x8 tokens).
    assert model.stem.position_embedding.shape == (1, 64, 32)
    assert math.isclose(float(model.stem.position_embedding.detach().abs().sum()), 0.0)


# ---- FLOPs: torch's FlopCounterMode against an analytic count (2 FLOP per multiply-add) ----


def _conv(cin: int, cout: int, k: int, pixels: int) -> int:
    """A k x k conv (or a k=2, stride-2 transposed conv counted at its output with k=1)."""
    return 2 * cin * cout * k * k * pixels


def _double_conv(cin: int, cout: int, pixels: int) -> int:
    """DoubleConv: 3x3 cin->cout, 3x3 cout->cout, 1x1 cout->cout."""
    return _conv(cin, cout, 3, pixels) + _conv(cout, cout, 3, pixels) + _conv(cout, cout, 1, pixels)


def _mtm_flops(c: int, grid: tuple[int, int], cfg: MTUNetConfig) -> int:
    """One MTM of token dim ``c`` on an h x w grid (LGG-SA on the window-padded grid, EA)."""
    h, w = grid
    ws = cfg.win_size
    sh, sw = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
    ph, pw = sh // ws, sw // ws
    padded, windows = sh * sw, ph * pw
    f = 4 * 2 * padded * c * c  # window attention q, k, v, out
    f += 2 * 2 * padded * ws * ws * c  # q k^T and (attention) v inside every window
    f += 2 * windows * c * ws * ws  # DlightConv Linear(C, w*w)
    f += 3 * 2 * windows * c * c  # axial q, k, v on the window tokens
    f += 2 * 2 * windows * c * (ph + pw)  # axial scores and weighted sums (rows + columns)
    f += _conv(2 * c, c, 1, padded)  # queeze
    if cfg.external_attention:
        hidden = cfg.ea_coef * c
        # query_liner and proj (C <-> coef*C), linear_0 and linear_1 (head <-> memory).
        f += 2 * 2 * h * w * c * hidden + 2 * 2 * h * w * hidden * cfg.ea_memory
    return f


def analytic_flops(cfg: MTUNetConfig, size: tuple[int, int]) -> int:
    """Convolution and matmul FLOPs of one image's forward pass, from architecture.md."""
    r = cfg.resolved()
    c0, c1, c2 = r.cnn_channels
    e0 = r.encoder_dims[0]
    px = size[0] * size[1]

    def half(g: tuple[int, int]) -> tuple[int, int]:
        return (g[0] + 1) // 2, (g[1] + 1) // 2

    g0 = (size[0] // 8, size[1] // 8)
    g1, g2 = half(g0), half(half(g0))
    n0, n1, n2 = g0[0] * g0[1], g1[0] * g1[1], g2[0] * g2[1]
    cin = 3 if r.in_channels == 1 else r.in_channels
    f = _double_conv(cin, c0, px) + _double_conv(c0, c1, px // 4) + _double_conv(c1, c2, px // 16)
    f += _conv(c2, e0, 1, n0)  # trans_dim
    f += 2 * _mtm_flops(e0, g0, r) + _conv(e0, 2 * e0, 2, n1)  # encoder 0 + downsampling
    f += 2 * _mtm_flops(2 * e0, g1, r) + _conv(2 * e0, 4 * e0, 2, n2)  # encoder 1
    f += 2 * _mtm_flops(4 * e0, g2, r)  # bottleneck
    # Decoder 0: transposed conv (computed on the uncropped 2x grid), 1x1 conv, MTMs.
    f += _conv(4 * e0, 2 * e0, 1, 4 * n2) + _conv(4 * e0, 2 * e0, 1, n1)
    f += 2 * _mtm_flops(2 * e0, g1, r)
    # Decoder 1: transposed conv to e0, concatenated with the e0 skip: MTMs of dim 2 e0.
    f += _conv(2 * e0, e0, 1, 4 * n1) + 2 * _mtm_flops(2 * e0, g0, r)
    f += _conv(2 * e0, c2, 1, px // 16) + _double_conv(2 * c2, c2, px // 16)
    f += _conv(c2, c1, 1, px // 4) + _double_conv(2 * c1, c1, px // 4)
    f += _conv(c1, c0, 1, px) + _double_conv(2 * c0, c0, px)
    return f + _conv(c0, r.num_classes, 1, px)  # SegmentationHead


def measured_flops(cfg: MTUNetConfig, size: tuple[int, int]) -> int:
    """FlopCounterMode's total for one image, on the meta device (no compute, no memory)."""
    with torch.device("meta"):
        model = MTUNet(cfg)
        x = torch.empty(1, cfg.in_channels, *size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


@pytest.mark.parametrize(
    ("cfg", "size"),
    [
        (tiny(), (64, 64)),
        (tiny(), (64, 96)),
        (tiny(width_mult=0.25, win_size=2), (72, 88)),  # odd 9x11 grid, padded windows
        (tiny(external_attention=False, num_classes=4), (48, 64)),
        (MTUNetConfig(), (224, 224)),
    ],
)
def test_flops_match_analytic_count(cfg: MTUNetConfig, size: tuple[int, int]) -> None:
    assert measured_flops(cfg, size) == analytic_flops(cfg, size)


def test_flops_of_the_paper_network_and_scaling() -> None:
    # The official code's measured cost: about 80.75 GFLOP per 224 x 224 image.
    full = measured_flops(MTUNetConfig(), (224, 224))
    assert abs(full - 80.75e9) < 0.01e9
    # Twice the image side: about 4x (a little less: small grids pad to whole windows).
    small = measured_flops(tiny(), (64, 64))
    big = measured_flops(tiny(img_size=128), (128, 128))
    assert 3.6 < big / small <= 4.0
    # Twice every width: about 4x (convs and linears are quadratic in the width).
    wide = measured_flops(tiny(width_mult=0.25), (64, 64))
    assert 3.3 < wide / small <= 4.0
