"""The naive MT-UNet variant for speed comparison: identical to :class:`mtunet.model.MTUNet`
except that the Gaussian-weighted axial attention runs the authors' per-position Python loop,
with its small host-made distance tensors copied to the device at every position.

It lives in ``benchmarks/`` only; the package never uses it.
"""

from __future__ import annotations

import torch

from mtunet.model import MTUNet, MTUNetConfig
from mtunet.model.attention import GaussianTrans


class NaiveGaussianTrans(GaussianTrans):
    """The authors' ``GaussianTrans.forward``: one softmax pair per (row, column) position."""

    def forward(
        self, scores_x: torch.Tensor, scores_y: torch.Tensor, value: torch.Tensor
    ) -> torch.Tensor:
        """(B, Ph, Pw, Pw), (B, Pw, Ph, Ph), (B, Ph, Pw, C) -> (B, Ph, Pw, C)."""
        _, ph, pw, _ = value.shape
        out = torch.zeros_like(value)
        for r in range(ph):
            for c in range(pw):
                atten_x = scores_x[:, r, c, :]
                atten_y = scores_y[:, c, r, :]
                # As in the authors' code: built on the host, copied to the device each time.
                dis_x = torch.tensor([(j - c) ** 2 for j in range(pw)]).to(value.device)
                dis_y = torch.tensor([(i - r) ** 2 for i in range(ph)]).to(value.device)
                dis_x = -(self.shift * dis_x + self.bias)
                dis_y = -(self.shift * dis_y + self.bias)
                px = torch.softmax(dis_x + atten_x, dim=-1).to(value.dtype)
                py = torch.softmax(dis_y + atten_y, dim=-1).to(value.dtype)
                out[:, r, c, :] = (px.unsqueeze(-1) * value[:, r, :, :]).sum(-2) + (
                    py.unsqueeze(-1) * value[:, :, c, :]
                ).sum(-2)
        return out


def build_naive_mtunet(cfg: MTUNetConfig | None = None) -> MTUNet:
    """An :class:`MTUNet` whose every ``gaussiantrans`` runs the per-position loop.

    Same parameters and state-dict keys as ``MTUNet(cfg)``; weights can be copied across.
    """
    model = MTUNet(cfg)
    for module in model.modules():
        gt = getattr(module, "gaussiantrans", None)
        if isinstance(gt, GaussianTrans):
            naive = NaiveGaussianTrans()
            naive.load_state_dict(gt.state_dict())
            module.gaussiantrans = naive
    return model
