"""The training-step breakdown groups every profiled operator and counts the step's work."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from train_step_breakdown import FAMILIES, OTHER, breakdown, flop_family, group, op_family


def test_operators_fall_into_their_family() -> None:
    assert op_family("aten::convolution_backward") == "convolution"
    assert op_family("aten::mkldnn_convolution") == "convolution"
    assert op_family("aten::addmm") == "matrix product"
    assert op_family("aten::_softmax_backward_data") == "softmax"
    assert op_family("aten::native_batch_norm") == "normalisation"
    assert op_family("aten::copy_") == "copy and layout"
    assert op_family("aten::mul") == OTHER
    # Autograd bookkeeping is not the operator it wraps.
    assert op_family("autograd::engine::evaluate_function: AddmmBackward0") == OTHER
    assert flop_family("aten.mm") == "matrix product"
    assert flop_family("aten.convolution_backward") == "convolution"


def test_group_keeps_every_family_and_the_total() -> None:
    out = group([("aten::mm", 2.0), ("aten::bmm", 1.0), ("aten::relu", 4.0)], op_family)
    assert list(out) == [*FAMILIES, OTHER]
    assert out["matrix product"] == 3.0 and out[OTHER] == 4.0 and out["softmax"] == 0.0
    assert sum(out.values()) == 7.0


def test_breakdown_of_a_small_step() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.rand(5, 2, 8, 8)

    def step() -> None:
        opt.zero_grad()
        torch.softmax(net(x), dim=1).sum().backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    result = breakdown(step, steps=2, warmup=1)
    fams = result["families"]
    assert abs(result["gflop_per_step"] - counter.get_total_flops() / 1e9) < 1e-12
    assert fams["convolution"]["gflop_per_step"] > 0
    assert fams["matrix product"]["gflop_per_step"] > 0
    assert fams["softmax"]["gflop_per_step"] == 0 and fams["softmax"]["gflop_per_s"] is None
    assert fams["softmax"]["ms_per_step"] > 0
    assert abs(sum(f["share"] for f in fams.values()) - 1.0) < 1e-9
    assert result["profiled_ms_per_step"] > 0 and result["unprofiled_ms_per_step"] > 0
