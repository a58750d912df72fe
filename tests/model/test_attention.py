"""LGG-SA pieces: vectorised Gaussian axial attention vs a per-position loop, window padding,
device discipline (no host tensors), autocast and torch.compile."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mtunet.model.attention import (
    CSAttention,
    GaussianTrans,
    MEAttention,
    axial_attention,
    pad_windows,
)
from mtunet.model.external_attention import external_attention, external_attention_reference


def loop_gaussian_axial(
    scores_x: torch.Tensor,
    scores_y: torch.Tensor,
    value: torch.Tensor,
    shift: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """The authors' per-position loop (GaussianTrans.forward), written out plainly.

    Distances are made on the host and copied to ``value``'s device, as the authors do.
    The row and column sums are formed separately so non-square grids work.
    """
    _, ph, pw, _ = value.shape
    rows = []
    for r in range(ph):
        cols = []
        for c in range(pw):
            ax = scores_x[:, r, c, :]  # (B, Pw)
            ay = scores_y[:, c, r, :]  # (B, Ph)
            if shift is not None:
                dis_x = torch.tensor([(j - c) ** 2 for j in range(pw)]).to(value.device)
                dis_y = torch.tensor([(i - r) ** 2 for i in range(ph)]).to(value.device)
                ax = ax - (shift * dis_x + bias)
                ay = ay - (shift * dis_y + bias)
            px = torch.softmax(ax, dim=-1)
            py = torch.softmax(ay, dim=-1)
            out = (px.unsqueeze(-1) * value[:, r, :, :]).sum(-2) + (
                py.unsqueeze(-1) * value[:, :, c, :]
            ).sum(-2)
            cols.append(out)
        rows.append(torch.stack(cols, dim=1))
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize(("ph", "pw"), [(3, 5), (4, 4), (1, 6), (7, 2)])
@pytest.mark.parametrize("gaussian", [True, False])
def test_axial_matches_loop_forward_and_gradients(ph: int, pw: int, gaussian: bool) -> None:
    g = torch.Generator().manual_seed(ph * 10 + pw)
    b, c = 2, 6
    f64 = torch.float64
    sx = torch.randn(b, ph, pw, pw, generator=g, dtype=f64).requires_grad_()
    sy = torch.randn(b, pw, ph, ph, generator=g, dtype=f64).requires_grad_()
    v = torch.randn(b, ph, pw, c, generator=g, dtype=f64).requires_grad_()
    shift = torch.tensor([0.3], dtype=f64, requires_grad=True) if gaussian else None
    bias = torch.tensor([-0.7], dtype=f64, requires_grad=True) if gaussian else None

    ours = axial_attention(sx, sy, v, shift)
    ref = loop_gaussian_axial(sx, sy, v, shift, bias)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)

    w = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    inputs = [sx, sy, v] + ([shift] if gaussian else [])
    g_ours = torch.autograd.grad((ours * w).sum(), inputs)
    g_ref_all = torch.autograd.grad((ref * w).sum(), [*inputs, bias] if gaussian else inputs)
    for a, r in zip(g_ours, g_ref_all[: len(inputs)], strict=True):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
    if gaussian:
        # The authors' `bias` cancels in the softmax: its gradient is zero up to rounding.
        assert abs(g_ref_all[-1].item()) < 1e-12
        assert g_ours[-1].abs().item() > 1e-6  # while `shift` does matter


def test_gaussian_module_bias_is_unused_and_gets_no_gradient() -> None:
    gt = GaussianTrans().double()
    sx = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    sy = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    v = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    out = gt(sx, sy, v)
    ref = loop_gaussian_axial(sx, sy, v, gt.shift.detach(), gt.bias.detach())
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    assert gt.bias.grad is None
    assert gt.shift.grad is not None
    assert gt.bias.item() < 0 < gt.shift.item()  # authors' initialisation signs


def test_pad_windows_official_quirk_non_square() -> None:
    x = torch.arange(1, 1 + 5 * 6, dtype=torch.float32).reshape(1, 1, 5, 6)
    y = pad_windows(x, 4, "official")  # 5x6 -> 8x8
    assert y.shape == (1, 1, 8, 8)
    torch.testing.assert_close(y[..., :5, :6], x)
    assert (y[..., :5, 6:] == 0).all()  # right strip stays zero
    assert (y[..., 5:, :6] == 0).all()  # bottom strip stays zero
    torch.testing.assert_close(y[..., 5:, 6:], x[..., -3:, -2:])  # last rows and columns
    # Only one axis padded: nothing but zeros added.
    z = pad_windows(x[..., :4, :], 4, "official")
    assert z.shape == (1, 1, 4, 8) and (z[..., 6:] == 0).all()
    # Multiples pass through untouched: the input itself comes back (documented contract).
    square = x[..., :4, :4]
    assert pad_windows(square, 4, "official") is square
    assert pad_windows(square, 4, "corrected") is square
    assert pad_windows(square, 2) is square and pad_windows(square, 1) is square
    torch.testing.assert_close(pad_windows(square, 4), x[..., :4, :4])


def test_pad_windows_short_side_and_corrected() -> None:
    x = torch.arange(1, 5, dtype=torch.float32).reshape(1, 1, 2, 2)
    y = pad_windows(x, 7, "official")  # 2 -> 7 needs 5 rows: leading ones repeat row 0
    assert y.shape == (1, 1, 7, 7)
    expected = torch.tensor([[1, 1, 1, 1, 2]] * 4 + [[3, 3, 3, 3, 4]], dtype=torch.float32)
    torch.testing.assert_close(y[0, 0, 2:, 2:], expected)
    one = torch.full((1, 1, 1, 1), 5.0)
    torch.testing.assert_close(pad_windows(one, 4)[0, 0, 1:, 1:], torch.full((3, 3), 5.0))
    c = pad_windows(x, 4, "corrected")
    torch.testing.assert_close(c[0, 0, :, 3], torch.tensor([2.0, 4.0, 4.0, 4.0]))
    torch.testing.assert_close(c[0, 0, 3, :], torch.tensor([3.0, 4.0, 4.0, 4.0]))


@pytest.mark.parametrize("win", [1, 2, 4, 7])
@pytest.mark.parametrize("hw", [(6, 10), (8, 8), (3, 5)])
def test_csattention_shapes_any_grid_and_window(win: int, hw: tuple[int, int]) -> None:
    att = CSAttention(16, 4, win)
    x = torch.randn(2, hw[0] * hw[1], 16)
    y = att(x, hw)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_csattention_official_vs_corrected_differ_only_when_padding() -> None:
    torch.manual_seed(1)
    a = CSAttention(16, 4, 4, padding="official")
    b = CSAttention(16, 4, 4, padding="corrected")
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 64, 16)
    torch.testing.assert_close(a(x, (8, 8)), b(x, (8, 8)))  # 8 divides by 4: same
    x = torch.randn(1, 36, 16)
    assert (a(x, (6, 6)) - b(x, (6, 6))).abs().max() > 1e-4


class _DeviceRecorder(TorchDispatchMode):
    """Records the device of every tensor each aten op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.devices.append((str(func), t.device.type))
        return out


def test_no_host_tensors_in_forward() -> None:
    """On the meta device, every intermediate stays there: nothing is made on the host."""
    att = CSAttention(16, 4, 4).to("meta")
    x = torch.randn(2, 6 * 10, 16, device="meta")
    with _DeviceRecorder() as rec:
        y = att(x, (6, 10))
    assert y.device.type == "meta"
    assert rec.devices and {d for _, d in rec.devices} == {"meta"}
    # Control: the authors' loop does create host tensors, and the recorder sees them.
    v = torch.randn(1, 2, 3, 4, device="meta")
    with _DeviceRecorder() as rec:
        loop_gaussian_axial(
            torch.randn(1, 2, 3, 3, device="meta"),
            torch.randn(1, 3, 2, 2, device="meta"),
            v,
            torch.ones(1, device="meta"),
            torch.ones(1, device="meta"),
        )
    assert "cpu" in {d for _, d in rec.devices}


def test_csattention_float64_and_bfloat16_autocast() -> None:
    att = CSAttention(16, 4, 4)
    x = torch.randn(1, 36, 16)
    y64 = att.double()(x.double(), (6, 6))
    assert y64.dtype == torch.float64
    att = att.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = att(x, (6, 6))
    assert yb.dtype == torch.bfloat16
    y32 = att(x, (6, 6))
    rel = (yb.float() - y32).norm() / y32.norm()
    assert rel < 5e-2


def test_external_attention_normalisation() -> None:
    """EA's attention map (the input of ``linear_1``) is the double normalisation: softmax
    over the N tokens of ``linear_0``'s logits, then an L1 normalisation over the memory
    slots, so every token's slot weights sum to 1. Read off the plain formula, which the
    module's fused path must equal (next tests)."""
    torch.manual_seed(0)
    ea = MEAttention(16, 4, memory=8, coef=4).double()
    assert ea.linear_0.weight.shape == (8, 4) and ea.query_liner.weight.shape == (64, 16)
    b, n = 2, 10
    x = 3 * torch.randn(b, n, 16, dtype=torch.float64)  # large enough for peaked softmaxes
    q = ea.query_liner(x).reshape(b, n, 16, 4)
    seen: dict[str, torch.Tensor] = {}
    real_linear = torch.nn.functional.linear

    def spy(inp: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None):
        out = real_linear(inp, weight, bias)
        seen["logits" if weight is ea.linear_0.weight else "attn"] = (
            out if weight is ea.linear_0.weight else inp
        )
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "linear", spy)
        ref = external_attention_reference(
            q, ea.linear_0.weight, ea.linear_0.bias, ea.linear_1.weight, ea.linear_1.bias
        )
    y = ea(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, ea.proj(ref.reshape(b, n, -1)))
    logits, attn = seen["logits"], seen["attn"]
    assert logits.shape == attn.shape == (b, 16, n, 8)  # (B, coef*heads, N, memory)
    assert (attn >= 0).all()
    # Normalised over the memory slots: each token's weights sum to 1.
    torch.testing.assert_close(attn.sum(-1), torch.ones(b, 16, n, dtype=torch.float64))
    # ... after a softmax over the tokens: recompute both steps from the logits.
    over_tokens = torch.softmax(logits, dim=-2)
    torch.testing.assert_close(over_tokens.sum(-2), torch.ones(b, 16, 8, dtype=torch.float64))
    torch.testing.assert_close(attn, over_tokens / (1e-9 + over_tokens.sum(-1, keepdim=True)))
    # Neither single normalisation gives this map: the token sums are not 1, and a softmax
    # over the slots alone (the usual attention) differs.
    assert (attn.sum(-2) - 1).abs().max() > 0.1
    assert (attn - torch.softmax(logits, dim=-1)).abs().max() > 1e-3
    # Each token's output depends on the other tokens (softmax over the token axis).
    x2 = x.clone()
    x2[:, 5:] += 1.0
    assert not torch.allclose(ea(x2)[:, :1], y[:, :1])


def _ea_inputs(dtype: torch.dtype, b: int = 2, n: int = 10, h: int = 3, d: int = 4, m: int = 5):
    gen = torch.Generator().manual_seed(1)
    shapes = [(b, n, h, d), (m, d), (m,), (d, m), (d,)]
    return [(2 * torch.randn(s, generator=gen, dtype=dtype)).requires_grad_() for s in shapes]


def test_fused_external_attention_matches_autograd_in_float64() -> None:
    """The hand-written backward gives autograd's gradients of the plain formula for the
    queries and all four weights (float64: agreement to rounding), and passes gradcheck."""
    inputs = _ea_inputs(torch.float64)
    upstream = torch.randn(
        2, 10, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    fused = external_attention(*inputs)
    grads = torch.autograd.grad(fused, inputs, upstream)
    ref = external_attention_reference(*inputs)
    ref_grads = torch.autograd.grad(ref, inputs, upstream)
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    for name, g, r in zip(("q", "w0", "b0", "w1", "b1"), grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12, msg=name)
    # b0 is constant along the token softmax: its gradient is zero up to rounding.
    assert grads[2].abs().max() < 1e-12
    assert torch.autograd.gradcheck(external_attention, tuple(inputs))


def test_fused_external_attention_float32_and_partial_gradients() -> None:
    """In float32 the fused path agrees with the plain one to float rounding, and it
    returns only the gradients asked for (frozen weights get none)."""
    inputs = _ea_inputs(torch.float32, b=3, n=36, h=8, d=8, m=64)
    torch.testing.assert_close(
        external_attention(*inputs), external_attention_reference(*inputs), rtol=1e-5, atol=1e-6
    )
    q, w0, b0, w1, b1 = inputs
    w0.requires_grad_(False)
    b1.requires_grad_(False)
    out = external_attention(q, w0, b0, w1, b1)
    gq, gb0, gw1 = torch.autograd.grad(out.square().sum(), (q, b0, w1))
    rq, _, rw1 = torch.autograd.grad(
        external_attention_reference(q, w0, b0, w1, b1).square().sum(), (q, b0, w1)
    )
    # Cancellation in the softmax backward leaves single elements with a larger relative
    # error in either path; the gradients as a whole agree to float32 rounding.
    for g, r in ((gq, rq), (gw1, rw1)):
        assert ((g - r).norm() / r.norm()).item() < 1e-5
    assert gb0.abs().max() < 1e-3 * gw1.abs().max()


def test_external_attention_takes_the_plain_path_under_autocast() -> None:
    """Under autocast the plain formula runs (autocast picks each op's dtype), so the
    output is bfloat16 like the rest of the network's linear layers."""
    inputs = _ea_inputs(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = external_attention(*inputs)
        ref = external_attention_reference(*inputs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.slow
def test_compile_fullgraph_attention() -> None:
    torch._dynamo.reset()
    att = CSAttention(16, 4, 4).eval()
    compiled = torch.compile(att, fullgraph=True)
    x = torch.randn(2, 36, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, (6, 6)), att(x, (6, 6)), rtol=1e-4, atol=1e-5)
