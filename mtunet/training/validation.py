"""Scores of the model during training, and the model-selection rule they drive.

:func:`confusion_dice` scores the epoch's augmented training batches, :func:`validation_dice`
the validation volumes (the published prediction protocol, :func:`mtunet.inference.predict_volume`).
The selection rule decides which epoch's weights become ``model.pt``: ``best_val`` keeps the epoch
with the best validation Dice, ``last`` the last epoch. The test split is never looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtunet import distributed as mdist
from mtunet.training.progress import Progress


def foreground_dice(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> list[float]:
    """Dice of classes 1..C-1 with the published empty-mask conventions.

    Args:
        pred: int (Z, H, W) predicted labels.
        gt: int (Z, H, W) ground-truth labels.
        num_classes: Classes including background.

    Returns:
        C-1 floats: ``mtunet.metrics.dice`` when both masks are non-empty, 1.0 when only the
        ground truth is empty, 0.0 when the prediction is empty.
    """
    from mtunet.metrics import dice

    out = []
    for c in range(1, num_classes):
        p, g = pred == c, gt == c
        if not p.any():
            out.append(0.0)
        elif not g.any():
            out.append(1.0)
        else:
            out.append(float(dice(p, g)))
    return out


def confusion_dice(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Per-class hard Dice of a (gt, pred) pixel-count matrix, foreground classes only.

    Args:
        confusion: (C, C) int counts, rows ground truth, columns prediction.
        class_names: C names, background first.

    Returns:
        ``{name: Dice in [0, 1]}`` for classes 1..C-1 (None for a class absent from both).
    """
    tp = np.diag(confusion).astype(np.float64)
    denom = confusion.sum(axis=0) + confusion.sum(axis=1)
    return {
        name: round(2.0 * float(tp[c]) / float(denom[c]), 6) if denom[c] > 0 else None
        for c, name in enumerate(class_names)
        if c > 0
    }


def validation_dice(
    model: nn.Module,
    volumes: Any,
    num_classes: int,
    img_size: tuple[int, int],
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """Mean foreground Dice over the validation volumes and classes 1..C-1.

    Under DDP each process predicts every W-th volume and the sums are combined, so the
    result is the same as on one process.

    Args:
        model: Network returning logits (B, C, h, w); run in eval mode.
        volumes: A ``VolumeDataset`` of the validation split.
        num_classes: Classes including background.
        img_size: Network input (h, w).
        batch_size: Slices per forward pass.
        amp_dtype: Autocast dtype or None.
    """
    from mtunet.inference import predict_volume

    info = _current_info()
    total = torch.zeros(2, dtype=torch.float64)
    for index in range(info.rank, len(volumes), info.world_size):
        item = volumes[index]
        pred = predict_volume(model, item["image"], img_size, batch_size, amp_dtype=amp_dtype)
        scores = foreground_dice(pred, np.asarray(item["label"]), num_classes)
        total += torch.tensor([sum(scores), len(scores)], dtype=torch.float64)
    if mdist.is_initialized():
        device = next(model.parameters()).device
        total = mdist.sum_over_processes(total.to(device)).cpu()
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")


def _current_info() -> mdist.DistInfo:
    if mdist.is_initialized():
        import torch.distributed as dist

        return mdist.DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())
    return mdist.DistInfo()


# --------------------------------------------------------------------------------------
# Model selection
# --------------------------------------------------------------------------------------


def selection_rule(selection: str, has_val: bool, manifest_path: Path) -> str:
    """The rule a ``train.selection`` setting stands for on a dataset.

    ``"auto"`` is ``"best_val"`` when the dataset has validation volumes and ``"last"``
    otherwise; ``"best_val"`` without validation volumes raises ValueError.
    """
    if selection == "best_val" and not has_val:
        raise ValueError(
            f"selection: 'best_val' needs validation volumes, but {manifest_path} has "
            "none; use 'last' or 'auto'"
        )
    if selection == "auto":
        return "best_val" if has_val else "last"
    return selection


def is_new_best(rule: str, val_dice: float | None, best_dice: float | None) -> bool:
    """Whether an epoch validated at ``val_dice`` replaces the best one so far."""
    return (
        rule == "best_val"
        and val_dice is not None
        and not math.isnan(val_dice)
        and (best_dice is None or val_dice > best_dice)
    )


def selection_record(rule: str, progress: Progress, epoch: int) -> dict[str, Any]:
    """The ``selection`` entry of checkpoints and ``train.json`` after ``epoch`` epochs."""
    if rule == "best_val":
        return {
            "rule": "best_val",
            "epoch": progress.best_epoch,
            "val_dice": progress.best_dice,
            "split": "val",
        }
    last_val = progress.history[-1].get("val_dice") if progress.history else None
    return {"rule": "last", "epoch": epoch, "val_dice": last_val, "split": None}


def selected_weights(
    rule: str, progress: Progress, epochs: int
) -> tuple[int | None, dict[str, torch.Tensor] | None]:
    """The selected epoch and its weights (None: the model's current weights, rule ``last``)."""
    if rule == "last":
        return epochs, None
    if progress.best_state is None:  # cannot happen: the last epoch is always validated
        raise RuntimeError("selection: no best-validation weights were recorded")
    return progress.best_epoch, progress.best_state
