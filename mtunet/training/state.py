"""Resume and checkpoint state: finding a resumable ``last.pt``, RNG states, payloads.

``last.pt`` holds everything a restarted process needs to continue as if it had never
stopped (weights, optimizer, the RNG states of every process, history, the best-validation
epoch and its weights). A restart resumes only when the checkpoint was written by the same
run: same params (except :data:`~mtunet.training.config.RUNTIME_FIELDS`), model config,
dataset and process count; otherwise it starts afresh with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mtunet import distributed as mdist
from mtunet.checkpoint import load_checkpoint
from mtunet.training.config import RUNTIME_FIELDS, TrainConfig
from mtunet.training.progress import Progress

if TYPE_CHECKING:
    from mtunet.training.spec import RunSpec

logger = logging.getLogger(__name__)

#: Per-epoch history entries that measure time: in ``last.pt`` and ``train.json``, never in
#: ``model.pt``.
WALL_CLOCK_KEYS = ("train_seconds",)


# --------------------------------------------------------------------------------------
# Finding a resumable last.pt
# --------------------------------------------------------------------------------------


def _comparable_train_config(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in RUNTIME_FIELDS}


def config_differences(ckpt: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between a checkpoint's run and the requested one."""
    diffs: list[str] = []
    old_train = _comparable_train_config(ckpt.get("train_config") or {})
    new_train = _comparable_train_config(expected["train_config"])
    for key in sorted(set(old_train) | set(new_train)):
        if old_train.get(key) != new_train.get(key):
            diffs.append(f"train.{key}: {old_train.get(key)!r} -> {new_train.get(key)!r}")
    for key in ("model_name", "model_kwargs"):
        # Checkpoints from before the registry are MT-UNet's.
        old = ckpt.get(key, "mtunet" if key == "model_name" else {})
        if old != expected[key]:
            diffs.append(f"{key}: {old!r} -> {expected[key]!r}")
    for section in ("model_config", "data"):
        old, new = ckpt.get(section) or {}, expected[section]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                diffs.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    if ckpt.get("world_size", 1) != expected["world_size"]:
        diffs.append(f"world_size: {ckpt.get('world_size', 1)} -> {expected['world_size']}")
    return diffs


def find_resume(
    last: Path, cfg: TrainConfig, expected: Mapping[str, Any], is_main: bool
) -> dict[str, Any] | None:
    """``last`` (``out_dir/last.pt``) when it exists, is readable and matches the run.

    Args:
        last: The resume checkpoint's path.
        cfg: The resolved training config (``resume`` and ``epochs`` are read).
        expected: The requested run as :meth:`RunSpec.expected` describes it.
        is_main: Whether this process logs the reason for starting afresh.
    """
    if not cfg.resume or not last.exists():
        return None
    try:
        ck = load_checkpoint(last, map_location="cpu")
    except ValueError as exc:
        if is_main:
            logger.warning("%s is unreadable (%s); starting afresh", last, exc)
        return None
    if ck.get("optimizer") is None or ck.get("rng") is None:
        if is_main:
            logger.warning("%s holds no resume state; starting afresh", last)
        return None
    if int(ck.get("epoch", 0)) >= int(cfg.epochs):  # type: ignore[arg-type]
        # A finished run is not resumed: DVC reruns this stage when code or data changed,
        # and the kept last.pt would otherwise hand back the old weights untouched.
        if is_main:
            logger.warning("%s is a finished run; training afresh", last)
        return None
    diffs = config_differences(ck, expected)
    if diffs:
        if is_main:
            logger.warning(
                "%s was written with different parameters, not resuming; starting afresh (%s)",
                last,
                "; ".join(diffs),
            )
        return None
    return ck


# --------------------------------------------------------------------------------------
# RNG states
# --------------------------------------------------------------------------------------


def gather_rng_states(device: torch.device) -> dict[str, Any]:
    """Every process's torch (and CUDA) RNG state, as lists indexed by rank."""
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    if mdist.is_initialized():
        import torch.distributed as dist

        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (cpu_state, cuda_state))
        cpu_states = [g[0] for g in gathered]
        cuda_states = [g[1] for g in gathered]
    else:
        cpu_states, cuda_states = [cpu_state], [cuda_state]
    return {
        "torch": cpu_states,
        "cuda": [s for s in cuda_states if s is not None],
    }


def restore_rng_states(rng: Mapping[str, Any], rank: int, device: torch.device) -> None:
    """Set this process's torch (and CUDA) RNG state from :func:`gather_rng_states`' record."""
    torch.set_rng_state(rng["torch"][rank])
    if device.type == "cuda" and rng.get("cuda"):
        torch.cuda.set_rng_state(rng["cuda"][rank], device)


# --------------------------------------------------------------------------------------
# Checkpoint payloads
# --------------------------------------------------------------------------------------


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights, contiguous whatever the training memory format, so
    checkpoints load anywhere."""
    return {
        k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
        for k, v in model.state_dict().items()
    }


def checkpoint_payload(
    spec: RunSpec,
    progress: Progress,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    full: bool,
    rng: dict[str, Any] | None,
    model: dict[str, torch.Tensor],
    global_step: int,
    selection: dict[str, Any],
) -> dict[str, Any]:
    """A checkpoint dict (:mod:`mtunet.checkpoint` format).

    ``full`` for ``last.pt``: with the optimizer state, ``rng`` and the best weights;
    ``model.pt`` stores none of the three, nor the per-epoch wall-clock times.
    """
    return {
        "format": "mtunet-checkpoint",
        "version": 1,
        "model_config": spec.model_cfg.to_dict(),
        "model_name": spec.model.name,
        "model_kwargs": dict(spec.model.kwargs),
        "train_config": spec.cfg.to_dict(),
        "data": spec.data_info,
        "epoch": epoch,
        "global_step": global_step,
        "world_size": spec.info.world_size,
        "model": model,
        "optimizer": optimizer.state_dict() if full else None,
        "best_model": progress.best_state if full else None,
        "rng": rng if full else None,
        "selection": selection,
        "best": {"epoch": progress.best_epoch, "val_dice": progress.best_dice},
        # model.pt keeps no wall-clock time, so the same run gives the same bytes (and
        # the same DVC hashes downstream); last.pt keeps it for train.json after a resume.
        "history": [
            {k: v for k, v in h.items() if full or k not in WALL_CLOCK_KEYS}
            for h in progress.history
        ],
        "torch_version": str(torch.__version__),
    }
