"""The training step itself: what it updates, and that on CUDA it never waits for the GPU."""

from __future__ import annotations

import warnings

import pytest
import torch

from mtunet.losses import CEDiceLoss
from mtunet.model import MTUNet, MTUNetConfig
from mtunet.training.epoch import optimizer_step
from mtunet.training.launch import determinism

CFG = MTUNetConfig(width_mult=0.125, img_size=32, num_classes=4, in_channels=1)


def _batch(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 32, 32, generator=gen)
    y = torch.randint(0, CFG.num_classes, (3, 32, 32), generator=gen)
    return x.to(device), y.to(device)


def _setup(device: str, fused: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer, ...]:
    torch.manual_seed(0)
    model = MTUNet(CFG).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    x, y = _batch(device)
    confusion = torch.zeros(CFG.num_classes**2, dtype=torch.int64, device=device)
    return model, opt, x, y, confusion, CEDiceLoss(CFG.num_classes)


def _run(parts: tuple, amp: torch.dtype | None = None) -> torch.Tensor:
    model, opt, x, y, confusion, criterion = parts
    return optimizer_step(
        model, criterion, opt, x, y, ce_scale=1.0, amp_dtype=amp, confusion=confusion
    )


def test_step_counts_pairs_and_moves_the_weights() -> None:
    """The confusion counts are bincount's of the (label, prediction) pairs, every pixel
    once, and the step changes the weights and returns the loss on the device."""
    parts = _setup("cpu", fused=True)
    model, _, x, y, confusion, _ = parts
    before = model.SegmentationHead.weight.detach().clone()
    loss = _run(parts)
    after = model.SegmentationHead.weight.detach()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert int(confusion.sum()) == y.numel()
    torch.manual_seed(0)
    fresh = MTUNet(CFG).train()
    with torch.no_grad():
        pred = fresh(x).argmax(1)  # the same network before its step
    expected = torch.bincount(
        (y * CFG.num_classes + pred).reshape(-1), minlength=CFG.num_classes**2
    )
    assert torch.equal(confusion, expected)
    assert not torch.equal(before, after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", [None, torch.bfloat16], ids=["float32", "bfloat16"])
def test_cuda_step_never_synchronises(amp: torch.dtype | None) -> None:
    """With deterministic kernels on, as training runs, a whole step (forward, loss,
    confusion counts, backward, fused Adam) raises no host-device synchronisation, and it
    counts every pixel once."""
    with determinism(True, torch.device("cuda")), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warn-only notes on nondeterministic kernels
        parts = _setup("cuda", fused=True)  # copying the weights over waits, by design
        _run(parts, amp)  # the first step creates cuBLAS/cuDNN handles and optimizer state
        parts[4].zero_()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss = _run(parts, amp)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    confusion = parts[4]
    assert torch.isfinite(loss).item()
    assert int(confusion.sum()) == 3 * 32 * 32
