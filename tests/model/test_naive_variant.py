"""The benchmark's naive variant computes the same network (only the loop differs)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mtunet.model import MTUNet, MTUNetConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from naive_mtunet import NaiveGaussianTrans, build_naive_mtunet


def test_naive_variant_matches_and_differs_only_in_the_loop() -> None:
    cfg = MTUNetConfig(width_mult=0.125, img_size=64)
    ours = MTUNet(cfg).double().eval()
    naive = build_naive_mtunet(cfg).double().eval()
    assert list(naive.state_dict()) == list(ours.state_dict())
    naive.load_state_dict(ours.state_dict())
    swapped = [m for m in naive.modules() if isinstance(m, NaiveGaussianTrans)]
    assert len(swapped) == 10
    x = torch.rand(1, 1, 48, 80, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(naive(x), ours(x), rtol=1e-10, atol=1e-10)
