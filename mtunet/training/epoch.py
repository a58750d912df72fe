"""One epoch of optimizer steps: poly learning rate, forward, loss, backward, step.

The loss of step k is read on the host only after step k+1 is queued, so the host never
waits for the device inside a step; a non-finite loss therefore stops training one step
after the bad one, with ``last.pt`` still holding the last good epoch.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch

from mtunet import distributed as mdist
from mtunet.training.build import Components
from mtunet.training.live import log_step
from mtunet.training.progress import Progress
from mtunet.training.schedule import poly_lr
from mtunet.training.spec import RunSpec


def train_epoch(
    spec: RunSpec, parts: Components, progress: Progress, epoch: int, live: Any, bar: Any
) -> tuple[float, int, np.ndarray]:
    """Train epoch ``epoch`` (0-based), advancing ``progress.global_step`` per step.

    Args:
        spec: The run.
        parts: Its network, optimizer, loss and batches.
        progress: The run's progress (``global_step`` is read and advanced).
        epoch: The epoch to train.
        live: DVCLive logger (rank 0) or None.
        bar: tqdm progress bar or None.

    Returns:
        The mean loss over the epoch's steps, the images seen (all processes) and the
        (C, C) (gt, pred) pixel counts of the epoch's augmented training batches.

    Raises:
        FloatingPointError: A non-finite loss.
    """
    cfg, p = spec.cfg, parts
    device, amp_dtype, memory_format = spec.device, spec.amp_dtype, spec.memory_format
    p.model.train()
    p.sampler.set_epoch(epoch)
    spec.train_set.set_epoch(epoch)
    p.loader_gen.manual_seed(cfg.seed + epoch)
    losses: list[float] = []
    n_images = 0
    num_classes = spec.model_cfg.num_classes
    # (gt, pred) pixel counts of the epoch's augmented training batches, kept on the
    # device and read once at the end: which class the network is (not) learning.
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    # The loss of step k is read on the host after step k+1 is queued, so the host
    # never waits for the device inside a step (a non-finite loss stops one step later).
    pending: tuple[torch.Tensor, int, float] | None = None
    for step, batch in enumerate(p.loader):
        if step >= p.steps_per_epoch:
            break
        lr = poly_lr(cfg.lr, progress.global_step, p.max_steps, cfg.poly_power)  # type: ignore[arg-type]
        for group in p.optimizer.param_groups:
            group["lr"] = lr
        x = batch["image"].to(device, non_blocking=True, memory_format=memory_format)
        y = batch["label"].to(device, non_blocking=True)
        loss = optimizer_step(
            p.forward,
            p.criterion,
            p.optimizer,
            x,
            y,
            ce_scale=p.sampler.ce_scale(step),
            amp_dtype=amp_dtype,
            confusion=confusion,
        )
        progress.global_step += 1
        n_images += p.sampler.global_size(step)
        if pending is not None:
            losses.append(_read_step(spec, p, epoch, *pending, live, bar))
        # Sum over processes on the device; the mean is read later.
        pending = (mdist.sum_over_processes(loss), step, lr)
    if pending is not None:
        losses.append(_read_step(spec, p, epoch, *pending, live, bar))
    confusion_np = (
        mdist.sum_over_processes(confusion).cpu().numpy().reshape(num_classes, num_classes)
    )
    return (float(np.mean(losses)) if losses else float("nan")), n_images, confusion_np


def optimizer_step(
    forward: Any,
    criterion: Any,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    ce_scale: float,
    amp_dtype: torch.dtype | None,
    confusion: torch.Tensor,
) -> torch.Tensor:
    """One training step, queued on the device without waiting for it.

    Forward (under autocast when ``amp_dtype`` is set), loss, backward and optimizer step;
    nothing here reads a device value on the host, so on a GPU the host runs ahead.

    Args:
        forward: The network, or its compiled form: (B, C_in, H, W) -> (B, K, H, W) logits.
        criterion: The training loss, ``criterion(logits, y, ce_scale=...)``.
        optimizer: Steps the network's parameters.
        x: (B, C_in, H, W) float images on the device.
        y: (B, H, W) int64 class ids in ``[0, K)`` on the device.
        ce_scale: Weight of this process's cross-entropy share (see the batch sampler).
        amp_dtype: Autocast dtype, or None for the parameters' dtype.
        confusion: (K*K,) int64 counts of (ground truth, prediction) pixel pairs, flattened
            row-major; this batch's pairs are added in place.

    Returns:
        The loss: a 0-dim float tensor on the device, not yet read.
    """
    num_classes = math.isqrt(confusion.numel())
    autocast = (
        torch.autocast(device_type=x.device.type, dtype=amp_dtype)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    with autocast:
        logits = forward(x)
    loss = criterion(logits, y, ce_scale=ce_scale)
    with torch.no_grad():
        pairs = y.reshape(-1) * num_classes + logits.argmax(1).reshape(-1)
        # Not bincount: it sizes its output from the largest value, which on CUDA makes
        # the host wait for the device every step.
        confusion.scatter_add_(0, pairs, torch.ones_like(pairs))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def _read_step(
    spec: RunSpec,
    parts: Components,
    epoch: int,
    loss_sum: torch.Tensor,
    step: int,
    lr: float,
    live: Any,
    bar: Any,
) -> float:
    """Read step ``step``'s loss (summed over processes), check it and log it."""
    steps_per_epoch = parts.steps_per_epoch
    value = float(loss_sum) / spec.info.world_size
    global_step = epoch * steps_per_epoch + step + 1
    if not math.isfinite(value):
        raise FloatingPointError(
            f"train: non-finite loss ({value}) at epoch {epoch + 1}, step "
            f"{step + 1}/{steps_per_epoch} (global step {global_step}, "
            f"lr {lr:.3g}); stopped. {spec.out_dir / 'last.pt'} keeps the last good "
            f"epoch ({epoch})"
        )
    if live is not None:
        log_step(live, global_step, value, lr)
    if bar is not None:
        bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
        bar.update(1)
    return value
