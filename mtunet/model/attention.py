"""Attention layers of MT-UNet: LGG-SA (local window attention, DlightConv aggregation,
Gaussian-weighted axial attention), the global self-attention ablation and external attention.

Everything here works on any (h, w) token grid, follows the input's device and dtype, and
has no Python loop over positions (``torch.compile(fullgraph=True)`` traces it whole).
Attribute names follow the authors' code so that their checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mtunet.model.external_attention import external_attention
from mtunet.model.layers import to_map, to_tokens


def pad_windows(
    x: torch.Tensor, win_size: int, mode: Literal["official", "corrected"] = "official"
) -> torch.Tensor:
    """Pad a (B, C, h, w) map at the bottom/right so both sides are multiples of ``win_size``.

    ``"official"`` reproduces the authors' quirk, generalised to non-square maps: each axis
    is padded to the next multiple (``S = s + w - s % w`` when ``s % w != 0``) with zeros,
    and only the bottom-right corner block ``[h:Sh, w:Sw]`` is filled with the last
    ``Sh - h`` rows and ``Sw - w`` columns of the map; the right and bottom strips stay
    zero. When a side is shorter than its padding (e.g. 2 -> 7 with win_size 7) the missing
    leading rows/columns repeat the first one (the authors' code broadcasts a 1-token map
    the same way and fails otherwise). ``"corrected"`` replicates the edge rows and columns
    into the whole right and bottom margins instead.

    Returns:
        (B, C, Sh, Sw) map; ``x`` itself when no padding is needed.
    """
    h, w = x.shape[-2:]
    ph = (-h) % win_size
    pw = (-w) % win_size
    if ph == 0 and pw == 0:
        return x
    if mode == "corrected":
        return F.pad(x, (0, pw, 0, ph), mode="replicate")
    out = F.pad(x, (0, pw, 0, ph))
    if ph == 0 or pw == 0:
        return out  # the corner block is empty
    src = x
    if ph > h or pw > w:
        src = F.pad(x, (max(pw - w, 0), 0, max(ph - h, 0), 0), mode="replicate")
    corner = src[..., src.shape[-2] - ph :, src.shape[-1] - pw :]
    # Functional write (no in-place on a view of the input) keeps autograd and compile happy.
    top = out[..., :h, :]
    bottom = torch.cat([out[..., h:, :w], corner], dim=-1)
    return torch.cat([top, bottom], dim=-2)


class Attention(nn.Module):
    """Multi-head self-attention over the tokens of each local window (authors' ``Attention``).

    Keys ``query_layer``, ``key_layer``, ``value_layer``, ``out`` (all with bias).

    Args:
        dim: Token dim C.
        num_heads: Heads; the head size is C / num_heads.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads: dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.query_layer = nn.Linear(dim, dim)
        self.key_layer = nn.Linear(dim, dim)
        self.value_layer = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend within the second-to-last axis.

        Args:
            x: (..., n, C) tokens; attention runs over the n tokens of each leading index.

        Returns:
            (..., n, C) tokens after the output projection.
        """
        *lead, n, c = x.shape
        hd = c // self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, n, self.num_heads, hd).transpose(1, 2)

        q = heads(self.query_layer(x))
        k = heads(self.key_layer(x))
        v = heads(self.value_layer(x))
        # softmax(q k^T / sqrt(C / heads)) v, the authors' scaling.
        y = F.scaled_dot_product_attention(q, k, v)
        y = y.transpose(1, 2).reshape(*lead, n, c)
        return self.out(y)


class WinAttention(nn.Module):
    """Wrapper that keeps the authors' key prefix ``win_atten.attention``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention = Attention(dim, num_heads)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, Ph, Pw, w*w, C) window tokens -> same shape after window attention."""
        return self.attention(windows)


class DlightConv(nn.Module):
    """Aggregates each window's w*w tokens into one global token (dynamic light conv).

    mean over the window -> Linear(C, w*w) -> softmax -> weighted sum of the window tokens.
    """

    def __init__(self, dim: int, win_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, win_size * win_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, Ph, Pw, w*w, C) -> (B, Ph, Pw, C) global tokens."""
        prob = torch.softmax(self.linear(windows.mean(dim=-2)), dim=-1)  # (B, Ph, Pw, w*w)
        return (windows * prob.unsqueeze(-1)).sum(dim=-2)


class AxialScores(nn.Module):
    """Single-head axial attention scores on the global tokens (authors' axial ``Attention``).

    q, k, v are Linear(C, C) with bias; there is NO 1/sqrt(C) scaling. ``out`` exists in the
    authors' module (and their checkpoints) but is never applied: it is kept, unused, so
    that checkpoints load, and receives no gradient.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query_layer = nn.Linear(dim, dim)
        self.key_layer = nn.Linear(dim, dim)
        self.value_layer = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)  # unused on purpose (authors' code never calls it)

    def forward(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Row and column scores of a (B, Ph, Pw, C) grid of global tokens.

        Returns:
            ``scores_x`` (B, Ph, Pw, Pw): ``q[b,r,c] . k[b,r,c']``;
            ``scores_y`` (B, Pw, Ph, Ph): ``q[b,r,c] . k[b,r',c]`` indexed ``[b,c,r,r']``;
            ``value`` (B, Ph, Pw, C).
        """
        q = self.query_layer(g)
        k = self.key_layer(g)
        v = self.value_layer(g)
        scores_x = q @ k.transpose(-1, -2)
        scores_y = q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)
        return scores_x, scores_y, v


def squared_distances(n: int, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(n, n) matrix ``(j - i)**2`` built directly on ``like``'s device (no host copy)."""
    idx = torch.arange(n, device=like.device, dtype=dtype)
    return (idx.unsqueeze(0) - idx.unsqueeze(1)) ** 2


def axial_attention(
    scores_x: torch.Tensor,
    scores_y: torch.Tensor,
    value: torch.Tensor,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """(Gaussian-weighted) axial attention for all positions at once.

    ``out[b,r,c] = sum_c' px[c'] v[b,r,c'] + sum_r' py[r'] v[b,r',c]`` with
    ``px = softmax_c'(scores_x[b,r,c,c'] - shift*(c'-c)^2)`` and
    ``py = softmax_r'(scores_y[b,c,r,r'] - shift*(r'-r)^2)``. The authors also subtract a
    learned scalar ``bias``; it is constant along the softmax axis and cancels exactly, so
    it is left out here (its gradient is identically zero in their code).

    Args:
        scores_x: (B, Ph, Pw, Pw) row scores.
        scores_y: (B, Pw, Ph, Ph) column scores.
        value: (B, Ph, Pw, C) values.
        shift: () or (1,) Gaussian width parameter; ``None`` disables the weighting.

    Returns:
        (B, Ph, Pw, C) attended values (same dtype as ``value`` outside autocast).
    """
    ph, pw = value.shape[1], value.shape[2]
    if shift is not None:
        # Distances in at least the parameter's precision: (P-1)^2 is not exact in bf16.
        dtype = torch.promote_types(scores_x.dtype, shift.dtype)
        scores_x = scores_x - shift * squared_distances(pw, scores_x, dtype)
        scores_y = scores_y - shift * squared_distances(ph, scores_y, dtype)
    px = torch.softmax(scores_x, dim=-1).to(value.dtype)
    py = torch.softmax(scores_y, dim=-1).to(value.dtype)
    along_rows = px @ value  # (B, Ph, Pw, C)
    along_cols = (py @ value.transpose(1, 2)).transpose(1, 2)  # (B, Pw, Ph, C) -> (B, Ph, Pw, C)
    return along_rows + along_cols


class GaussianTrans(nn.Module):
    """Holds the Gaussian parameters ``shift`` (|N(0,1)|) and ``bias`` (-|N(0,1)|).

    ``bias`` is a checkpoint entry of the authors' model that cancels inside the softmax;
    it is kept so checkpoints load, never used, and so gets no gradient (``None``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(-torch.abs(torch.randn(1)))  # cancels in softmax: unused
        self.shift = nn.Parameter(torch.abs(torch.randn(1)))

    def forward(
        self, scores_x: torch.Tensor, scores_y: torch.Tensor, value: torch.Tensor
    ) -> torch.Tensor:
        """See :func:`axial_attention`; returns (B, Ph, Pw, C)."""
        return axial_attention(scores_x, scores_y, value, self.shift)


class CSAttention(nn.Module):
    """LGG-SA: local window attention + Gaussian-weighted axial attention on window tokens.

    Args:
        dim: Token dim C.
        num_heads: Heads of the local window attention.
        win_size: Window side w; the global map is upsampled by w.
        gaussian: Apply the Gaussian distance weighting (ablation switch).
        padding: ``"official"`` (authors' quirk) or ``"corrected"``, see :func:`pad_windows`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        win_size: int,
        gaussian: bool = True,
        padding: Literal["official", "corrected"] = "official",
    ) -> None:
        super().__init__()
        self.win_size = win_size
        self.padding = padding
        self.win_atten = WinAttention(dim, num_heads)
        self.dlightconv = DlightConv(dim, win_size)
        self.global_atten = AxialScores(dim)
        self.gaussiantrans = GaussianTrans() if gaussian else None
        self.queeze = nn.Conv2d(2 * dim, dim, 1)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, h*w, C) tokens of an h x w grid -> (B, h*w, C) tokens."""
        h, w = hw
        ws = self.win_size
        m = pad_windows(to_map(x, hw), ws, self.padding)  # (B, C, Sh, Sw)
        b, c, sh, sw = m.shape
        ph, pw = sh // ws, sw // ws
        windows = m.reshape(b, c, ph, ws, pw, ws).permute(0, 2, 4, 3, 5, 1)
        windows = self.win_atten(windows.reshape(b, ph, pw, ws * ws, c))  # (B, Ph, Pw, w*w, C)
        local = windows.reshape(b, ph, pw, ws, ws, c).permute(0, 5, 1, 3, 2, 4)
        local = local.reshape(b, c, sh, sw)

        g = self.dlightconv(windows)  # (B, Ph, Pw, C)
        scores_x, scores_y, value = self.global_atten(g)
        if self.gaussiantrans is not None:
            g = self.gaussiantrans(scores_x, scores_y, value)
        else:
            g = axial_attention(scores_x, scores_y, value, None)
        g = g.permute(0, 3, 1, 2)
        # align_corners=True ignores the scale factor, so size=(Sh, Sw) equals "scale by w".
        g = F.interpolate(g, size=(sh, sw), mode="bilinear", align_corners=True)
        y = self.queeze(torch.cat([g.to(local.dtype), local], dim=1))
        return to_tokens(y[..., :h, :w])


class GlobalSelfAttention(nn.Module):
    """Ablation baseline: plain multi-head self-attention over all tokens (replaces LGG-SA)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention = Attention(dim, num_heads)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, N, C) -> (B, N, C); ``hw`` is unused (kept for a uniform interface)."""
        del hw
        return self.attention(x)


class MEAttention(nn.Module):
    """Multi-head external attention (EA) with a shared memory of ``memory`` slots.

    ``q = Linear(C, coef*C)`` split into ``coef*num_heads`` heads of size C/num_heads;
    ``a = Linear(C/num_heads, memory)(q)``, softmax over the token axis, then normalised
    over the memory slots (``a / (1e-9 + sum)``); ``Linear(memory, C/num_heads)``, merge
    heads, ``Linear(coef*C, C)``. The middle part runs as
    :func:`~mtunet.model.external_attention.external_attention`, whose backward is
    written out to spare passes over the (B, N, heads, memory) scores.
    """

    def __init__(self, dim: int, num_heads: int, memory: int, coef: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads: dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = coef * num_heads
        head = dim // num_heads
        self.query_liner = nn.Linear(dim, dim * coef)
        self.linear_0 = nn.Linear(head, memory)
        self.linear_1 = nn.Linear(memory, head)
        self.proj = nn.Linear(dim * coef, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens -> (B, N, C) tokens."""
        b, n, _ = x.shape
        q = self.query_liner(x).reshape(b, n, self.num_heads, -1)  # (B, N, heads, head)
        y = external_attention(
            q, self.linear_0.weight, self.linear_0.bias, self.linear_1.weight, self.linear_1.bias
        )
        return self.proj(y.reshape(b, n, -1))
