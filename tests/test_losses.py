"""The training loss equals the published MT-UNet/TransUNet loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtunet.losses import CEDiceLoss, soft_dice_loss


def _reference_dice_loss(logits: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """A loop-per-class transcription of the published ``DiceLoss(softmax=True)``."""
    inputs = torch.softmax(logits, dim=1)
    onehot = torch.cat([(target == i).unsqueeze(1) for i in range(n)], dim=1).float()
    loss = 0.0
    for i in range(n):
        score, tgt = inputs[:, i], onehot[:, i]
        intersect = torch.sum(score * tgt)
        y_sum = torch.sum(tgt * tgt)
        z_sum = torch.sum(score * score)
        loss = loss + 1 - (2 * intersect + 1e-5) / (z_sum + y_sum + 1e-5)
    return loss / n


@pytest.mark.parametrize("n", [2, 4, 9])
def test_matches_published_loss(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    logits = torch.randn(3, n, 8, 10, generator=g, dtype=torch.float64)
    target = torch.randint(0, n, (3, 8, 10), generator=g)
    dice = soft_dice_loss(logits, target)
    ref = _reference_dice_loss(logits, target, n)
    torch.testing.assert_close(dice, ref, rtol=1e-12, atol=1e-12)
    total = CEDiceLoss(n)(logits, target)
    expected = 0.5 * F.cross_entropy(logits, target) + 0.5 * ref
    torch.testing.assert_close(total, expected, rtol=1e-12, atol=1e-12)


def test_gradients_match_reference() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    target = torch.randint(0, 4, (2, 6, 6), generator=g)
    CEDiceLoss(4)(a, target).backward()
    (0.5 * F.cross_entropy(b, target) + 0.5 * _reference_dice_loss(b, target, 4)).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_perfect_prediction_has_small_dice_loss_and_background_counts() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:5, 2:5] = 1
    logits = F.one_hot(target, 3).permute(0, 3, 1, 2).double() * 100.0
    # Class 2 is absent from both: its term is 1 - 1e-5 / 1e-5 = 0, the others ~0.
    assert float(soft_dice_loss(logits, target)) < 1e-6
    # Wrong background only: the loss must notice (background is part of the mean).
    wrong = logits.clone()
    wrong[0, :, 0, 0] = torch.tensor([0.0, 0.0, 100.0])
    assert float(soft_dice_loss(wrong, target)) > 1e-3


def test_reduce_sums_makes_split_batches_equal_the_whole() -> None:
    """Adding the per-class sums of two halves gives the Dice loss of the whole batch."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (4, 5, 5), generator=g)
    whole = soft_dice_loss(logits, target)
    halves: list[torch.Tensor] = []

    def capture(sums: torch.Tensor) -> torch.Tensor:
        halves.append(sums)
        return sums

    soft_dice_loss(logits[:2], target[:2], reduce_sums=capture)
    other = halves[0]
    combined = soft_dice_loss(logits[2:], target[2:], reduce_sums=lambda s: s + other)
    torch.testing.assert_close(combined, whole)
    # A plain mean of the halves' losses is not the same thing.
    mean = 0.5 * (soft_dice_loss(logits[:2], target[:2]) + soft_dice_loss(logits[2:], target[2:]))
    assert abs(float(mean - whole)) > 1e-6


def test_bf16_logits_give_float32_loss() -> None:
    logits = torch.randn(2, 3, 4, 4).to(torch.bfloat16)
    target = torch.randint(0, 3, (2, 4, 4))
    assert CEDiceLoss(3)(logits, target).dtype == torch.float32


def test_bad_inputs() -> None:
    loss = CEDiceLoss(3)
    with pytest.raises(ValueError, match="expected 3 classes"):
        loss(torch.randn(1, 4, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="target: expected shape"):
        loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class ids"):
        loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, C, H, W\)"):
        soft_dice_loss(torch.randn(3, 4, 4), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        CEDiceLoss(1)
    with pytest.raises(ValueError, match="ce_weight"):
        CEDiceLoss(3, ce_weight=0.0, dice_weight=0.0)


def test_loss_never_reads_tensors_on_the_host() -> None:
    """Meta tensors hold no data: any host read (``int(t.max())``, ``.item()``) raises.

    The training step must not wait for the device, so the loss may only queue work; label
    ranges are checked where slices are loaded (tests/data/test_datasets.py).
    """
    logits = torch.randn(2, 3, 4, 4, device="meta", requires_grad=True)
    target = torch.zeros(2, 4, 4, dtype=torch.long, device="meta")
    out = CEDiceLoss(3)(logits, target, ce_scale=0.5)
    assert out.device.type == "meta" and out.shape == ()
    out.backward()


def test_ce_scale_weights_only_the_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 5, 5), torch.randint(0, 3, (2, 5, 5))
    ce = torch.nn.functional.cross_entropy(logits, target)
    dice = soft_dice_loss(logits, target)
    got = CEDiceLoss(3, ce_weight=0.5, dice_weight=0.5)(logits, target, ce_scale=1.5)
    torch.testing.assert_close(got, 0.5 * 1.5 * ce + 0.5 * dice)
    # 1.0 is the published loss, bit for bit.
    assert torch.equal(CEDiceLoss(3)(logits, target, ce_scale=1.0), CEDiceLoss(3)(logits, target))
