"""The published training loss: 0.5 x cross-entropy + 0.5 x soft Dice.

The soft Dice term is the one of the MT-UNet and TransUNet code (``utils.DiceLoss`` with
``softmax=True``): softmax probabilities ``p`` and one-hot targets ``g`` of *every* class,
background included, are summed over the whole batch and image (not per sample), and for
each class ``c``::

    dice_c = (2 * sum(p_c * g_c) + 1e-5) / (sum(p_c * p_c) + sum(g_c * g_c) + 1e-5)
    loss   = mean_c (1 - dice_c)

Because the sums run over the whole batch, the Dice term of a batch split across several
processes is not the mean of the per-process terms. ``reduce_sums`` lets distributed
training add the per-class sums of all processes (with a differentiable all-reduce) so that
the loss, and hence the gradient, equals the single-process loss of the global batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Smoothing term of the published DiceLoss (numerator and denominator).
DICE_SMOOTH = 1e-5

SumReducer = Callable[[Tensor], Tensor]


def _at_least_float32(x: Tensor) -> Tensor:
    """Half-precision logits (autocast) are upcast; float32/float64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_inputs(logits: Tensor, target: Tensor) -> int:
    """Validate shapes and return the number of classes."""
    if logits.ndim != 4:
        raise ValueError(f"logits: expected shape (B, C, H, W), got {tuple(logits.shape)}")
    b, c, h, w = logits.shape
    if c < 2:
        raise ValueError(f"logits: expected at least 2 classes, got {c}")
    if target.shape != (b, h, w):
        raise ValueError(
            f"target: expected shape (B, H, W) = {(b, h, w)} to match the logits, "
            f"got {tuple(target.shape)}"
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target: expected integer class ids, got dtype {target.dtype}")
    return c


def soft_dice_loss(
    logits: Tensor,
    target: Tensor,
    smooth: float = DICE_SMOOTH,
    reduce_sums: SumReducer | None = None,
) -> Tensor:
    """Soft Dice loss over all classes (background included), as MT-UNet/TransUNet.

    Args:
        logits: float (B, C, H, W) raw network outputs (logits, not probabilities).
        target: int (B, H, W) class ids in ``[0, C)``.
        smooth: Added to numerator and denominator (1e-5 as published).
        reduce_sums: Optional function applied to the (3, C) tensor of per-class sums
            ``[sum p*g, sum p*p, sum g*g]`` before the ratio, e.g. a differentiable
            all-reduce across processes. ``None`` uses this batch alone.

    Returns:
        Scalar tensor (float32, or float64 for float64 logits): ``mean_c (1 - dice_c)``, in ``[0, 1]``.
    """
    num_classes = _check_inputs(logits, target)
    # Sums in float32 even under bf16 autocast: they run over B*H*W pixels.
    probs = torch.softmax(_at_least_float32(logits), dim=1)
    onehot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    sums = torch.stack(
        [(probs * onehot).sum(dims), (probs * probs).sum(dims), (onehot * onehot).sum(dims)]
    )
    if reduce_sums is not None:
        sums = reduce_sums(sums)
    intersect, z_sum, y_sum = sums[0], sums[1], sums[2]
    dice = (2.0 * intersect + smooth) / (z_sum + y_sum + smooth)
    return (1.0 - dice).mean()


class CEDiceLoss(nn.Module):
    """``ce_weight * CrossEntropy + dice_weight * soft Dice`` (0.5 / 0.5 as published).

    Args:
        num_classes: Classes including background.
        ce_weight: Weight of the mean pixel-wise cross-entropy.
        dice_weight: Weight of :func:`soft_dice_loss`.
        reduce_sums: Passed to :func:`soft_dice_loss` (distributed training).
    """

    def __init__(
        self,
        num_classes: int,
        ce_weight: float = 0.5,
        dice_weight: float = 0.5,
        reduce_sums: SumReducer | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes: must be >= 2, got {num_classes}")
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight <= 0:
            raise ValueError(
                f"ce_weight, dice_weight: must be >= 0 and not both 0, got {ce_weight}, "
                f"{dice_weight}"
            )
        self.num_classes = num_classes
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.reduce_sums = reduce_sums

    def forward(self, logits: Tensor, target: Tensor, ce_scale: float = 1.0) -> Tensor:
        """Compute the loss.

        Labels are not range-checked here (that would make the host wait for the device
        every step): the training data checks them when a slice is loaded.

        Args:
            logits: float (B, C, H, W) raw network outputs (logits).
            target: int (B, H, W) class ids in ``[0, C)``.
            ce_scale: Factor on the mean cross-entropy (distributed training weights each
                process's share of an unevenly split batch); 1.0 leaves it as published.

        Returns:
            Scalar loss tensor (float32; float64 for float64 logits).

        Raises:
            ValueError: Wrong shapes or ``C != num_classes``.
        """
        c = _check_inputs(logits, target)
        if c != self.num_classes:
            raise ValueError(f"logits: expected {self.num_classes} classes, got {c}")
        ce = F.cross_entropy(_at_least_float32(logits), target.long())
        if ce_scale != 1.0:
            ce = ce * ce_scale
        dice = soft_dice_loss(logits, target, reduce_sums=self.reduce_sums)
        return self.ce_weight * ce + self.dice_weight * dice
