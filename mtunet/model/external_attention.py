"""The core of external attention with a hand-written backward.

External attention turns each head's tokens into scores over ``M`` memory slots,
normalises them twice (softmax over the ``N`` tokens, then division by the sum over the
slots) and maps them back::

    z = q W0^T + b0                 (B, N, H, M)
    s = softmax_N(z)
    a = s / (1e-9 + sum_M s)
    y = a W1^T + b1                 (B, N, H, d)

The (B, N, H, M) tensors are the largest of the whole network (at the quick size 16 to 32 times
its token maps), and every elementwise pass over them is memory-bound. Left to autograd,
the division alone costs five passes in the backward (``g / S``, ``-g``, ``* a``,
``/ S**2``, the sum). Because ``1 / (1e-9 + S)`` is one scalar per row it commutes with
the second linear map, ``y = (s W1^T) * r + b1`` with ``r = 1 / (1e-9 + S)``, so neither
``a`` nor its gradient is ever formed: the forward writes ``z`` and ``s`` and the backward
writes ``dL/ds`` and ``dL/dz`` once each. Same function, rounded differently in the last
bits; the gradients are checked against autograd's in float64.

Under autocast, inside ``torch.compile`` and on the meta device the plain formula runs
instead: autocast picks each op's dtype, the compiler fuses the passes itself, and meta
tensors (shape and FLOP counting) hold no numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

#: Added to the sum over the memory slots before dividing (the authors' constant).
SLOT_EPS = 1e-9


def external_attention_reference(
    q: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor
) -> torch.Tensor:
    """The plain formula, differentiated by autograd (the code path before the fused one).

    Args:
        q: (B, N, H, d) per-head queries.
        w0: (M, d) and ``b0`` (M,): the map to the memory slots (``linear_0``).
        w1: (d, M) and ``b1`` (d,): the map back (``linear_1``).

    Returns:
        (B, N, H, d) attended values.
    """
    a = torch.softmax(F.linear(q.transpose(1, 2), w0, b0), dim=-2)  # over the N tokens
    a = a / (SLOT_EPS + a.sum(dim=-1, keepdim=True))  # over the memory slots
    return F.linear(a, w1, b1).transpose(1, 2)


class _ExternalAttention(torch.autograd.Function):
    """See the module docstring; saves ``q``, ``s``, ``r`` and ``u = s W1^T``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        w0: torch.Tensor,
        b0: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
    ) -> torch.Tensor:
        s = torch.softmax(F.linear(q, w0, b0), dim=1)
        r = torch.reciprocal(s.sum(dim=-1, keepdim=True) + SLOT_EPS)  # (B, N, H, 1)
        u = F.linear(s, w1)  # (B, N, H, d)
        ctx.save_for_backward(q, s, r, u, w0, w1)
        return torch.addcmul(b1, u, r)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, s, r, u, w0, w1 = ctx.saved_tensors
        d, m = w1.shape
        need_q, need_w0, need_b0, need_w1, need_b1 = ctx.needs_input_grad
        grad_u = grad * r  # dL/du, (B, N, H, d)
        grad_b1 = grad.sum(dim=(0, 1, 2)) if need_b1 else None
        grad_w1 = grad_u.reshape(-1, d).t() @ s.reshape(-1, m) if need_w1 else None
        if not (need_q or need_w0 or need_b0):
            return None, None, None, grad_w1, grad_b1
        # r = 1 / (eps + S) gives dL/dS = -r^2 sum_d(grad * u), the same for every slot,
        # so dL/ds = grad_u W1 + that per-row constant: one matrix product with a bias.
        per_row = -(grad * u).sum(dim=-1, keepdim=True) * r * r
        grad_s = torch.addmm(per_row.reshape(-1, 1), grad_u.reshape(-1, d), w1).view_as(s)
        grad_z = torch.ops.aten._softmax_backward_data(grad_s, s, 1, s.dtype)
        del grad_s
        # Both products below are the fast orientations of the BLAS: the skinny operand is
        # stored transposed (3x and 5x faster at the quick size than the obvious forms).
        grad_q = F.linear(grad_z, w0.t().contiguous()) if need_q else None
        flat_z = grad_z.reshape(-1, m)
        grad_w0 = (q.reshape(-1, q.shape[-1]).t() @ flat_z).t() if need_w0 else None
        grad_b0 = flat_z.sum(dim=0) if need_b0 else None
        return grad_q, grad_w0, grad_b0, grad_w1, grad_b1


def external_attention(
    q: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor
) -> torch.Tensor:
    """External attention's double normalisation between its two linear maps.

    Args:
        q: (B, N, H, d) per-head queries (N tokens, H heads of size d).
        w0: (M, d) weight and ``b0`` (M,) bias of the map to the M memory slots.
        w1: (d, M) weight and ``b1`` (d,) bias of the map back.

    Returns:
        (B, N, H, d) attended values, in ``q``'s dtype (autocast's under autocast).
    """
    device = q.device.type
    plain = device == "meta" or torch.compiler.is_compiling()  # meta: shapes, no arithmetic
    if plain or torch.is_autocast_enabled(device):
        return external_attention_reference(q, w0, b0, w1, b1)
    return _ExternalAttention.apply(q, w0, b0, w1, b1)
