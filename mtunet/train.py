"""Training MT-UNet with the published recipe: presets, poly decay, 0.5 CE + 0.5 Dice.

``train(train_cfg, model_cfg, manifest_path, out_dir, live_dir)`` trains on a preprocessed
dataset (``dataset.json``) and writes

* ``out_dir/last.pt``: the resume state after every epoch (weights, optimizer, RNG states of
  every process, history, the best-validation epoch and its weights), written atomically;
* ``out_dir/model.pt``: the selected weights (``"optimizer": None``, ``"rng": None``), written
  when training ends;
* ``out_dir/train.json``: resolved configs, the selection rule and epoch, history, timings;
* DVCLive logs in ``live_dir``: ``train/loss`` and ``train/lr`` per step (DVCLive ``step``
  = optimizer steps taken), ``train/epoch_loss``, ``train/dice/<class>`` (hard Dice of the
  epoch's augmented training batches, per class) and ``val/dice`` per epoch, the resolved
  parameters.

Model selection never looks at the test split: ``selection="auto"`` keeps the epoch with the
best mean foreground Dice on the validation volumes when the dataset has them (ACDC), and
the last epoch otherwise (Synapse's published split has no validation cases).

The model's ``num_classes`` and ``in_channels`` always come from the dataset (they override
the ``model`` section); ``train.img_size``, when set, overrides ``model.img_size``.

Reproducibility: the same params give bit-identical weights on CPU, run after run, and a
run interrupted and restarted with the same params resumes from ``last.pt`` and ends with
the same weights as an uninterrupted one. Restarting with different params (every field
except ``num_workers``, ``pin_memory``, ``progress``, ``val_batch_size`` and ``resume``, or a
different model config, dataset or process count) starts afresh with a warning.

Several devices: DistributedDataParallel, one process per device, started by ``torchrun``
or by ``train.devices > 1``. ``batch_size`` is the *global* batch: each of the W processes
takes ``batch_size / W`` images per step (it must divide). The processes see the same global
batches as one process, without padding (the last, shorter batch is dealt out unevenly and
its cross-entropy weighted by each process's share); BatchNorm statistics and the soft Dice
sums are synchronised across processes, so a step equals the single-process step on the
same global batch up to float rounding. Only rank 0 logs and writes files.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mtunet import distributed as mdist
from mtunet.checkpoint import load_checkpoint, save_checkpoint
from mtunet.config import check, from_dict, to_dict
from mtunet.fileio import write_json
from mtunet.losses import CEDiceLoss
from mtunet.numerics import kernel_record, pin_cpu_kernels

logger = logging.getLogger(__name__)

#: The published recipes. ``momentum`` applies to SGD only.
PRESETS: dict[str, dict[str, Any]] = {
    # MT-UNet's train_mtunet_*.py
    "mtunet": {
        "optimizer": "adam",
        "lr": 1e-4,
        "weight_decay": 1e-4,
        "momentum": None,
        "batch_size": 12,
        "epochs": 100,
    },
    # TransUNet's trainer.py
    "transunet": {
        "optimizer": "sgd",
        "lr": 0.01,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "batch_size": 24,
        "epochs": 150,
    },
}

#: Fields that do not change the weights; a restart that differs only in these resumes.
RUNTIME_FIELDS = ("num_workers", "pin_memory", "progress", "val_batch_size", "resume")

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (``params.yaml`` section ``train``).

    ``optimizer``, ``lr``, ``weight_decay``, ``momentum``, ``batch_size`` and ``epochs``
    default to None, meaning "take it from ``preset``"; a value overrides the preset.
    :meth:`resolved` fills them in.

    Attributes:
        preset: ``"mtunet"`` (Adam, lr 1e-4, weight decay 1e-4, batch 12, 100 epochs) or
            ``"transunet"`` (SGD, lr 0.01, momentum 0.9, weight decay 1e-4, batch 24,
            150 epochs).
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: Base learning rate, decayed per step as ``lr * (1 - step / max_steps) ** poly_power``.
        weight_decay: L2 weight decay (coupled, as ``torch.optim.Adam``/``SGD``).
        momentum: SGD momentum (0.9 when the optimizer is SGD and none is given); must stay
            unset for Adam.
        batch_size: Global batch (images per optimizer step, summed over processes).
        epochs: Passes over the training slices.
        poly_power: Exponent of the poly decay (0.9 as published).
        ce_weight: Weight of cross-entropy in the loss (0.5 as published).
        dice_weight: Weight of the soft Dice loss (0.5 as published).
        augment: Random rot90/flip or rotation, as published.
        seed: Seeds weight init, shuffling, augmentation and dropout.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"mps"``, ``"cuda"`` or
            ``"cuda:N"``.
        devices: Processes (GPUs) to train on; > 1 spawns DistributedDataParallel workers
            (gloo on CPU, NCCL on CUDA). Under ``torchrun`` its environment decides instead.
        bf16: bfloat16 autocast of the forward pass on CUDA and on the CPU (fast on CPUs
            with AVX512-BF16 or AMX, slow elsewhere; ignored on MPS).
        channels_last: Channels-last memory format for the network and its input (faster
            convolutions on CPU; different float rounding than contiguous).
        fused_optimizer: The optimizer's fused implementation (one kernel for all
            parameters instead of a loop over them).
        compile: ``torch.compile`` the network (its compile time is paid at every start).
        cpu_kernels: ``"native"`` (the fastest kernels this CPU has) or ``"portable"``
            (AVX2 kernels everywhere on x86-64, so machines of different vector width
            compute the same bits; :mod:`mtunet.numerics`).
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: Pinned host memory for the batches (CUDA only).
        selection: ``"auto"`` (best validation epoch when the dataset has validation volumes,
            else the last epoch), ``"last"`` or ``"best_val"`` (error without a validation
            split). The test split is never used.
        val_every: Validate every this many epochs (and always after the last epoch).
        val_batch_size: Slices per forward pass during validation (does not change results).
        max_steps_per_epoch: Cap on optimizer steps per epoch (quick runs); None = full epoch.
        img_size: Training input (height, width), or None for the model config's img_size;
            when set it also becomes the model's img_size. Multiples of 8.
        deterministic: ``torch.use_deterministic_algorithms`` (warn-only) and deterministic
            cuDNN during training.
        progress: Show a tqdm progress bar (loss, lr, ETA).
        resume: Resume from ``out_dir/last.pt`` when its params match.
    """

    preset: Literal["mtunet", "transunet"] = "mtunet"
    optimizer: Literal["adam", "sgd"] | None = None
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    poly_power: float = 0.9
    ce_weight: float = 0.5
    dice_weight: float = 0.5
    augment: bool = True
    seed: int = 1234
    device: str = "auto"
    devices: int = 1
    bf16: bool = False
    channels_last: bool = False
    fused_optimizer: bool = False
    compile: bool = False
    cpu_kernels: Literal["native", "portable"] = "native"
    num_workers: int = 0
    pin_memory: bool = True
    selection: Literal["auto", "last", "best_val"] = "auto"
    val_every: int = 1
    val_batch_size: int = 16
    max_steps_per_epoch: int | None = None
    img_size: int | tuple[int, int] | None = None
    deterministic: bool = True
    progress: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        check(
            self.preset in PRESETS, "preset", f"must be one of {list(PRESETS)}, got {self.preset!r}"
        )
        check(
            self.optimizer in (None, "adam", "sgd"),
            "optimizer",
            f"must be 'adam' or 'sgd', got {self.optimizer!r}",
        )
        if self.lr is not None:
            check(math.isfinite(self.lr) and self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        if self.weight_decay is not None:
            check(
                math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                "weight_decay",
                f"must be >= 0, got {self.weight_decay}",
            )
        if self.momentum is not None:
            check(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
            optimizer = self.optimizer or PRESETS[self.preset]["optimizer"]
            check(
                optimizer == "sgd",
                "momentum",
                f"only used by SGD, but the optimizer is {optimizer!r}; leave it null",
            )
        if self.batch_size is not None:
            check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        if self.epochs is not None:
            check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(
            math.isfinite(self.poly_power) and self.poly_power >= 0,
            "poly_power",
            f"must be >= 0, got {self.poly_power}",
        )
        check(self.ce_weight >= 0, "ce_weight", f"must be >= 0, got {self.ce_weight}")
        check(self.dice_weight >= 0, "dice_weight", f"must be >= 0, got {self.dice_weight}")
        check(
            self.ce_weight + self.dice_weight > 0,
            "dice_weight",
            "ce_weight and dice_weight cannot both be 0",
        )
        check(0 <= self.seed < 2**31, "seed", f"must be in [0, 2**31), got {self.seed}")
        check(
            isinstance(self.device, str) and bool(_DEVICE_RE.match(self.device)),
            "device",
            f"expected 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {self.device!r}",
        )
        check(self.devices >= 1, "devices", f"must be >= 1, got {self.devices}")
        check(
            self.cpu_kernels in ("native", "portable"),
            "cpu_kernels",
            f"must be 'native' or 'portable', got {self.cpu_kernels!r}",
        )
        check(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")
        check(
            self.selection in ("auto", "last", "best_val"),
            "selection",
            f"must be 'auto', 'last' or 'best_val', got {self.selection!r}",
        )
        check(self.val_every >= 1, "val_every", f"must be >= 1, got {self.val_every}")
        check(
            self.val_batch_size >= 1, "val_batch_size", f"must be >= 1, got {self.val_batch_size}"
        )
        if self.max_steps_per_epoch is not None:
            check(
                self.max_steps_per_epoch >= 1,
                "max_steps_per_epoch",
                f"must be >= 1 or null, got {self.max_steps_per_epoch}",
            )
        if self.img_size is not None:
            size = self.img_size
            if isinstance(size, int) and not isinstance(size, bool):
                size = (size, size)
            if isinstance(size, list):
                size = tuple(size)
            check(
                isinstance(size, tuple)
                and len(size) == 2
                and all(isinstance(s, int) and s >= 8 and s % 8 == 0 for s in size),
                "img_size",
                f"expected null or positive multiples of 8 (int or [h, w]), got {self.img_size!r}",
            )
            object.__setattr__(self, "img_size", tuple(size))

    def resolved(self) -> TrainConfig:
        """This config with the preset's values filled into every field left None."""
        preset = PRESETS[self.preset]
        values = {
            k: getattr(self, k) if getattr(self, k) is not None else preset[k]
            for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs")
        }
        momentum = self.momentum
        if values["optimizer"] == "sgd" and momentum is None:
            momentum = preset["momentum"] if preset["momentum"] is not None else 0.9
        values["momentum"] = momentum
        return dataclasses.replace(self, **values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "train") -> TrainConfig:
        """Build from a ``params.yaml`` section; unknown keys and bad types raise ValueError."""
        return from_dict(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists); ``from_dict`` inverts it."""
        return to_dict(self)


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def poly_lr(base_lr: float, step: int, max_steps: int, power: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based), exactly as the published loop.

    TransUNet's and MT-UNet's loops set ``base * (1 - k/max) ** power`` right *after* step
    ``k``, so steps 0 and 1 both run at ``base_lr`` and step ``k >= 1`` at the value for
    ``k - 1``; the last step runs at a small positive rate.
    """
    return base_lr * (1.0 - max(step - 1, 0) / max_steps) ** power


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker from its torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _resolve_device(name: str, info: mdist.DistInfo) -> torch.device:
    from mtunet.inference import resolve_device

    device = resolve_device(name)
    if info.distributed:
        if device.type == "cuda":
            if torch.cuda.device_count() <= info.local_rank:
                raise ValueError(
                    f"devices: local rank {info.local_rank} needs GPU {info.local_rank}, but "
                    f"only {torch.cuda.device_count()} GPU(s) exist"
                )
            device = torch.device("cuda", info.local_rank)
        elif device.type != "cpu":
            raise ValueError(
                f"device: distributed training supports CUDA (NCCL) and CPU (gloo), "
                f"not {device.type!r}"
            )
    return device


@contextlib.contextmanager
def _determinism(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training; restores the global settings afterwards."""
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        if device.type == "cuda":
            # cuBLAS needs this for reproducible matmuls; read when cuBLAS initialises.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (e.g. interpolation) have no
        # deterministic version; on CPU every kernel used here is deterministic.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.deterministic = prev[2]
        torch.backends.cudnn.benchmark = prev[3]


def _splits_digest(splits: Mapping[str, Any]) -> str:
    text = json.dumps(splits, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _comparable_train_config(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in RUNTIME_FIELDS}


def _config_differences(ckpt: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between a checkpoint's run and the requested one."""
    diffs: list[str] = []
    old_train = _comparable_train_config(ckpt.get("train_config") or {})
    new_train = _comparable_train_config(expected["train_config"])
    for key in sorted(set(old_train) | set(new_train)):
        if old_train.get(key) != new_train.get(key):
            diffs.append(f"train.{key}: {old_train.get(key)!r} -> {new_train.get(key)!r}")
    for section in ("model_config", "data"):
        old, new = ckpt.get(section) or {}, expected[section]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                diffs.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    if ckpt.get("world_size", 1) != expected["world_size"]:
        diffs.append(f"world_size: {ckpt.get('world_size', 1)} -> {expected['world_size']}")
    return diffs


def _truncate_live_history(live_dir: Path, max_step: int) -> None:
    """Drop DVCLive metric rows logged after ``max_step`` (steps redone after a resume)."""
    metrics_dir = live_dir / "plots" / "metrics"
    if not metrics_dir.is_dir():
        return
    for tsv in metrics_dir.rglob("*.tsv"):
        lines = tsv.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        header = lines[0].split("\t")
        if "step" not in header:
            continue
        col = header.index("step")
        kept = [lines[0]]
        for line in lines[1:]:
            fields = line.split("\t")
            with contextlib.suppress(ValueError, IndexError):
                if int(fields[col]) <= max_step:
                    kept.append(line)
        tsv.write_text("\n".join(kept) + "\n", encoding="utf-8")


def _gather_rng_states(device: torch.device) -> dict[str, Any]:
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


def _restore_rng_states(rng: Mapping[str, Any], rank: int, device: torch.device) -> None:
    torch.set_rng_state(rng["torch"][rank])
    if device.type == "cuda" and rng.get("cuda"):
        torch.cuda.set_rng_state(rng["cuda"][rank], device)


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
# Entry point
# --------------------------------------------------------------------------------------


def train(
    train_cfg: TrainConfig,
    model_cfg: Any,
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train MT-UNet on a preprocessed dataset; see the module docstring for the outputs.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) this process trains as one
    rank. Otherwise ``train_cfg.devices > 1`` spawns that many processes, and 1 trains here.

    Args:
        train_cfg: Training settings.
        model_cfg: ``MTUNetConfig``; ``num_classes`` and ``in_channels`` are replaced by the
            dataset's, ``img_size`` by ``train_cfg.img_size`` when that is set.
        manifest_path: ``dataset.json`` or the folder holding it.
        out_dir: Folder for ``model.pt``, ``last.pt`` and ``train.json``.
        live_dir: DVCLive folder, or None for no DVCLive logs.

    Returns:
        The contents of ``train.json``.

    Raises:
        ValueError: Bad configs, an empty training split, ``selection="best_val"`` without
            validation volumes, a batch size not divisible by the process count.
        FileNotFoundError: Missing manifest or data files.
        FloatingPointError: A non-finite loss (``last.pt`` keeps the last good epoch).
    """
    if not isinstance(train_cfg, TrainConfig):
        raise ValueError(f"train_cfg: expected a TrainConfig, got {type(train_cfg).__name__}")
    # Before the first computation, and inherited by spawned processes.
    pin_cpu_kernels(train_cfg.cpu_kernels)
    info = mdist.env_info()
    if info is not None:  # started by torchrun: its environment decides
        return _run_process(info, train_cfg, model_cfg, manifest_path, out_dir, live_dir)
    if train_cfg.devices > 1:
        try:
            mdist.spawn(
                _spawn_entry,
                train_cfg.devices,
                (train_cfg, model_cfg, manifest_path, out_dir, live_dir),
            )
        except Exception as exc:
            text = str(exc)
            if "FloatingPointError" in text:
                raise FloatingPointError(f"distributed training stopped: {text}") from exc
            raise RuntimeError(f"distributed training failed: {text}") from exc
        from mtunet.fileio import read_json

        return read_json(Path(out_dir) / "train.json")
    return _run_process(mdist.DistInfo(), train_cfg, model_cfg, manifest_path, out_dir, live_dir)


def _spawn_entry(
    rank: int,
    world_size: int,
    train_cfg: TrainConfig,
    model_cfg: Any,
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str] | None,
) -> None:
    os.environ["RANK"] = str(rank)
    os.environ["LOCAL_RANK"] = str(rank)
    os.environ["WORLD_SIZE"] = str(world_size)
    info = mdist.DistInfo(rank=rank, world_size=world_size, local_rank=rank)
    # CPU workers share the cores instead of each taking all of them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    _run_process(info, train_cfg, model_cfg, manifest_path, out_dir, live_dir)


def _run_process(
    info: mdist.DistInfo,
    train_cfg: TrainConfig,
    model_cfg: Any,
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    device = _resolve_device(train_cfg.device, info)
    if info.distributed:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        mdist.init_process_group(info, device.type)
    try:
        with _determinism(train_cfg.deterministic, device):
            return _Trainer(
                info, device, train_cfg, model_cfg, manifest_path, out_dir, live_dir
            ).run()
    finally:
        if info.distributed:
            mdist.destroy_process_group()


class _Trainer:
    """One process's training run (all state in one place for checkpointing)."""

    def __init__(
        self,
        info: mdist.DistInfo,
        device: torch.device,
        train_cfg: TrainConfig,
        model_cfg: Any,
        manifest_path: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        live_dir: str | os.PathLike[str] | None,
    ) -> None:
        from mtunet.data import SliceDataset, VolumeDataset, load_manifest
        from mtunet.model import MTUNetConfig

        if not isinstance(model_cfg, MTUNetConfig):
            raise ValueError(f"model_cfg: expected an MTUNetConfig, got {type(model_cfg).__name__}")
        self.info = info
        self.device = device
        self.cfg = train_cfg.resolved()
        self.manifest_path = Path(manifest_path)
        self.out_dir = Path(out_dir)
        self.live_dir = Path(live_dir) if live_dir is not None else None
        self.manifest = manifest = load_manifest(manifest_path)

        raw = getattr(manifest, "raw", None) or {}
        in_channels = int(raw.get("in_channels", 1)) if isinstance(raw, Mapping) else 1
        overrides: dict[str, Any] = {
            "num_classes": int(manifest.num_classes),
            "in_channels": in_channels,
        }
        if self.cfg.img_size is not None:
            overrides["img_size"] = tuple(self.cfg.img_size)
        changed = {
            k: (getattr(model_cfg, k), v)
            for k, v in overrides.items()
            if getattr(model_cfg, k) != v
        }
        if changed and info.is_main:
            logger.info("model config taken from the dataset/train config: %s", changed)
        self.model_cfg = dataclasses.replace(model_cfg, **overrides)
        self.img_size: tuple[int, int] = tuple(self.model_cfg.img_size)  # type: ignore[assignment]

        cfg = self.cfg
        assert cfg.batch_size is not None and cfg.epochs is not None and cfg.lr is not None
        if cfg.batch_size % info.world_size != 0:
            raise ValueError(
                f"batch_size: the global batch {cfg.batch_size} must be divisible by the "
                f"{info.world_size} processes"
            )
        self.local_batch = cfg.batch_size // info.world_size

        self.train_set = SliceDataset(
            manifest, "train", self.img_size, augment=cfg.augment, seed=cfg.seed
        )
        if len(self.train_set) == 0:
            raise ValueError(f"{self.manifest_path}: the train split has no slices")
        val_volumes = manifest.splits.get("val", {}).get("volumes", []) if manifest.splits else []
        self.val_set = VolumeDataset(manifest, "val") if val_volumes else None
        if cfg.selection == "best_val" and self.val_set is None:
            raise ValueError(
                f"selection: 'best_val' needs validation volumes, but {self.manifest_path} has "
                "none; use 'last' or 'auto'"
            )
        if cfg.selection == "auto":
            self.rule = "best_val" if self.val_set is not None else "last"
        else:
            self.rule = cfg.selection
        self.amp_dtype = torch.bfloat16 if (cfg.bf16 and device.type in ("cuda", "cpu")) else None
        if cfg.bf16 and self.amp_dtype is None and info.is_main:
            logger.warning(
                "train.bf16: autocast is used on CUDA and CPU only; training in float32 on %s",
                device,
            )
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

        self.data_info = {
            "dataset": manifest.name,
            "num_classes": int(manifest.num_classes),
            "class_names": list(manifest.class_names),
            "in_channels": in_channels,
            "modality": manifest.modality,
            "preprocessing": dict(manifest.preprocessing),
            # How volumes were oriented, so `mtunet predict` reads a new scan the same way.
            "orientation": (manifest.raw.get("source_info") or {}).get("orientation"),
            "img_size": list(self.img_size),
            "n_train_slices": len(self.train_set),
            "n_val_volumes": len(self.val_set) if self.val_set is not None else 0,
            "splits_sha256": _splits_digest(manifest.splits),
        }

    # ------------------------------------------------------------------ setup

    def _build(self) -> None:
        from torch.utils.data import DataLoader

        from mtunet.model import MTUNet

        cfg, info = self.cfg, self.info
        torch.manual_seed(cfg.seed)
        model = MTUNet(self.model_cfg)
        if info.rank > 0:
            # Different dropout masks per process (rank 0 keeps the single-process stream).
            torch.manual_seed(cfg.seed + info.rank)
        self.raw_model = model
        self.resume_ckpt = self._find_resume()
        if self.resume_ckpt is not None:
            model.load_state_dict(self.resume_ckpt["model"])
        if info.distributed:
            model = mdist.convert_sync_batchnorm(model, self.device.type)
            self.raw_model = model
        model.to(self.device, memory_format=self.memory_format)
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # The official network has parameters its forward never uses (e.g. the
            # global-attention ``out`` projection), always the same ones: a static graph
            # lets DDP learn them once instead of searching the graph every step.
            self.model: nn.Module = DDP(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                static_graph=True,
            )
        else:
            self.model = model
        fused = {"fused": True} if cfg.fused_optimizer else {}
        if cfg.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused
            )
        else:
            self.optimizer = torch.optim.SGD(
                model.parameters(),
                lr=cfg.lr,
                momentum=cfg.momentum,
                weight_decay=cfg.weight_decay,
                **fused,
            )
        # The forward the loop calls; checkpoints always come from the plain module.
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.criterion = CEDiceLoss(
            self.model_cfg.num_classes,
            ce_weight=cfg.ce_weight,
            dice_weight=cfg.dice_weight,
            reduce_sums=mdist.all_reduce_sum if info.distributed else None,
        )
        # The same global batches for one and many processes, without padding.
        self.sampler = mdist.GlobalBatchSampler(
            len(self.train_set), cfg.batch_size, info.world_size, info.rank, cfg.seed
        )
        self._check_single_slice_batch(model)
        self.loader_gen = torch.Generator()
        self.loader = DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=cfg.num_workers,
            pin_memory=cfg.pin_memory and self.device.type == "cuda",
            generator=self.loader_gen,
            worker_init_fn=_seed_worker,
            # Workers are recreated each epoch so they see the dataset's new epoch.
            persistent_workers=False,
        )
        self.steps_per_epoch = len(self.loader)
        if cfg.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.max_steps_per_epoch)
        self.max_steps = cfg.epochs * self.steps_per_epoch  # type: ignore[operator]

        # Resume state.
        self.start_epoch = 0
        self.global_step = 0
        self.best_epoch: int | None = None
        self.best_dice: float | None = None
        # CPU copy of the best-validation weights; also stored in last.pt, so model.pt can
        # be rebuilt after a resume even when DVC removed it before re-running the stage.
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        ck = self.resume_ckpt
        if ck is not None:
            self.optimizer.load_state_dict(ck["optimizer"])
            self.start_epoch = int(ck["epoch"])
            self.global_step = int(ck["global_step"])
            best = ck.get("best") or {}
            self.best_epoch = best.get("epoch")
            self.best_dice = best.get("val_dice")
            self.best_state = ck.get("best_model")
            self.history = [dict(h) for h in ck.get("history", [])]
            _restore_rng_states(ck["rng"], info.rank, self.device)
            self.resumed_from = self.start_epoch
            if info.is_main:
                logger.info(
                    "resuming from %s at epoch %d", self.out_dir / "last.pt", self.start_epoch
                )
        self.resume_ckpt = None  # free the memory

    def _check_single_slice_batch(self, model: nn.Module) -> None:
        """Refuse, before the first step, a last batch of one slice that BatchNorm cannot take.

        A network whose deepest BatchNorm sees a 1 x 1 map (MT-UNet at ``img_size`` 32 or
        less) has a single value per channel in a one-slice batch, and BatchNorm raises in
        the middle of the first epoch. A probe on a copy finds out without touching the run.
        """
        n, batch = len(self.train_set), int(self.cfg.batch_size)  # type: ignore[arg-type]
        if self.sampler.global_size(len(self.sampler) - 1) != 1:
            return
        probe = copy.deepcopy(model).train()
        x = torch.zeros(1, self.model_cfg.in_channels, *self.img_size)
        try:
            with torch.no_grad():
                probe(x)
        except ValueError as exc:
            if "more than 1 value per channel" not in str(exc):
                raise
            raise ValueError(
                f"batch_size/img_size: {n} training slices in batches of {batch} leave a last "
                f"batch of one slice, and at img_size {list(self.img_size)} the network's "
                "BatchNorm then sees a single value per channel; choose a batch_size whose "
                "remainder is not 1 or a larger img_size"
            ) from exc

    def _expected(self) -> dict[str, Any]:
        return {
            "train_config": self.cfg.to_dict(),
            "model_config": self.model_cfg.to_dict(),
            "data": self.data_info,
            "world_size": self.info.world_size,
        }

    def _find_resume(self) -> dict[str, Any] | None:
        """``last.pt`` when it exists, is readable and matches the requested run."""
        last = self.out_dir / "last.pt"
        if not self.cfg.resume or not last.exists():
            return None
        try:
            ck = load_checkpoint(last, map_location="cpu")
        except ValueError as exc:
            if self.info.is_main:
                logger.warning("%s is unreadable (%s); starting afresh", last, exc)
            return None
        if ck.get("optimizer") is None or ck.get("rng") is None:
            if self.info.is_main:
                logger.warning("%s holds no resume state; starting afresh", last)
            return None
        if int(ck.get("epoch", 0)) >= int(self.cfg.epochs):  # type: ignore[arg-type]
            # A finished run is not resumed: DVC reruns this stage when code or data changed,
            # and the kept last.pt would otherwise hand back the old weights untouched.
            if self.info.is_main:
                logger.warning("%s is a finished run; training afresh", last)
            return None
        diffs = _config_differences(ck, self._expected())
        if diffs:
            if self.info.is_main:
                logger.warning(
                    "%s was written with different parameters, not resuming; starting afresh (%s)",
                    last,
                    "; ".join(diffs),
                )
            return None
        return ck

    # ------------------------------------------------------------------ checkpoints

    def _selection(self, epoch: int) -> dict[str, Any]:
        if self.rule == "best_val":
            return {
                "rule": "best_val",
                "epoch": self.best_epoch,
                "val_dice": self.best_dice,
                "split": "val",
            }
        last_val = self.history[-1].get("val_dice") if self.history else None
        return {"rule": "last", "epoch": epoch, "val_dice": last_val, "split": None}

    def _state(self) -> dict[str, torch.Tensor]:
        # Contiguous whatever the training memory format, so checkpoints load anywhere.
        return {
            k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
            for k, v in self.raw_model.state_dict().items()
        }

    def _payload(
        self,
        epoch: int,
        full: bool,
        rng: dict[str, Any] | None,
        state: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """A checkpoint dict: ``full`` for last.pt (optimizer, RNG, best weights)."""
        return {
            "format": "mtunet-checkpoint",
            "version": 1,
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "data": self.data_info,
            "epoch": epoch,
            # model.pt of the best epoch: the steps taken up to that epoch.
            "global_step": self.global_step if state is None else epoch * self.steps_per_epoch,
            "world_size": self.info.world_size,
            "model": state if state is not None else self._state(),
            "optimizer": self.optimizer.state_dict() if full else None,
            "best_model": self.best_state if full else None,
            "rng": rng if full else None,
            "selection": self._selection(epoch),
            "best": {"epoch": self.best_epoch, "val_dice": self.best_dice},
            "history": [dict(h) for h in self.history],
            "torch_version": str(torch.__version__),
        }

    # ------------------------------------------------------------------ loop

    def run(self) -> dict[str, Any]:
        self._build()
        cfg, info = self.cfg, self.info
        is_main = info.is_main
        if is_main and self.resumed_from is None:
            # A fresh run: stale outputs of another run must not survive it.
            for name in ("model.pt", "train.json"):
                (self.out_dir / name).unlink(missing_ok=True)
        live = self._open_live() if is_main else None
        bar = None
        if is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.max_steps,
                initial=self.global_step,
                desc=f"train {self.manifest.name}",
                unit="step",
                dynamic_ncols=True,
            )
        t_start = time.perf_counter()
        images_seen = 0
        train_seconds = 0.0
        try:
            for epoch in range(self.start_epoch, cfg.epochs):  # type: ignore[arg-type]
                t_epoch = time.perf_counter()
                epoch_loss, n_images = self._train_epoch(epoch, live, bar)
                seconds = time.perf_counter() - t_epoch
                train_seconds += seconds
                images_seen += n_images
                record: dict[str, Any] = {
                    "epoch": epoch + 1,
                    "loss": epoch_loss,
                    "lr_last": poly_lr(
                        cfg.lr, self.global_step - 1, self.max_steps, cfg.poly_power
                    ),  # type: ignore[arg-type]
                    "train_seconds": seconds,
                    "train_dice": confusion_dice(
                        self.epoch_confusion, self.manifest.class_names
                    ),
                    "val_dice": None,
                }
                last_epoch = epoch + 1 == cfg.epochs
                if self.val_set is not None and ((epoch + 1) % cfg.val_every == 0 or last_epoch):
                    record["val_dice"] = validation_dice(
                        self.raw_model,
                        self.val_set,
                        self.model_cfg.num_classes,
                        self.img_size,
                        cfg.val_batch_size,
                        self.amp_dtype,
                    )
                    self.raw_model.train()
                self.history.append(record)
                new_best = (
                    self.rule == "best_val"
                    and record["val_dice"] is not None
                    and not math.isnan(record["val_dice"])
                    and (self.best_dice is None or record["val_dice"] > self.best_dice)
                )
                if new_best:
                    self.best_epoch, self.best_dice = epoch + 1, record["val_dice"]
                    self.best_state = self._state()
                rng = _gather_rng_states(self.device)
                if is_main:
                    if live is not None:
                        live.step = self.global_step
                        live.log_metric("train/epoch_loss", epoch_loss)
                        for name, value in record["train_dice"].items():
                            if value is not None:
                                live.log_metric(f"train/dice/{name}", value)
                        live.log_metric("train/epoch", epoch + 1)
                        if record["val_dice"] is not None:
                            live.log_metric("val/dice", record["val_dice"])
                        live.make_summary()
                    save_checkpoint(self.out_dir / "last.pt", self._payload(epoch + 1, True, rng))
                if info.distributed:
                    import torch.distributed as dist

                    dist.barrier()
        finally:
            if bar is not None:
                bar.close()
            if live is not None:
                live.end()
        total_seconds = time.perf_counter() - t_start
        return self._finish(total_seconds, train_seconds, images_seen)

    def _open_live(self) -> Any:
        if self.live_dir is None:
            return None
        from dvclive import Live

        resume = self.resumed_from is not None
        if resume:
            _truncate_live_history(self.live_dir, self.global_step)
        live = Live(
            dir=str(self.live_dir),
            resume=resume,
            dvcyaml=False,
            save_dvc_exp=False,
            report=None,
        )
        live.log_params(
            {
                "train": self.cfg.to_dict(),
                "model": self.model_cfg.to_dict(),
                "data": {k: v for k, v in self.data_info.items() if k != "splits_sha256"},
                "world_size": self.info.world_size,
                "selection_rule": self.rule,
            }
        )
        return live

    def _train_epoch(self, epoch: int, live: Any, bar: Any) -> tuple[float, int]:
        cfg = self.cfg
        self.model.train()
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        self.loader_gen.manual_seed(cfg.seed + epoch)
        losses: list[float] = []
        n_images = 0
        num_classes = self.model_cfg.num_classes
        # (gt, pred) pixel counts of the epoch's augmented training batches, kept on the
        # device and read once at the end: which class the network is (not) learning.
        confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=self.device)
        # The loss of step k is read on the host after step k+1 is queued, so the host
        # never waits for the device inside a step (a non-finite loss stops one step later).
        pending: tuple[torch.Tensor, int, float] | None = None
        for step, batch in enumerate(self.loader):
            if step >= self.steps_per_epoch:
                break
            lr = poly_lr(cfg.lr, self.global_step, self.max_steps, cfg.poly_power)  # type: ignore[arg-type]
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            x = batch["image"].to(
                self.device, non_blocking=True, memory_format=self.memory_format
            )
            y = batch["label"].to(self.device, non_blocking=True)
            autocast = (
                torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
                if self.amp_dtype is not None
                else contextlib.nullcontext()
            )
            with autocast:
                logits = self.forward(x)
            loss = self.criterion(logits, y, ce_scale=self.sampler.ce_scale(step))
            with torch.no_grad():
                pairs = y.reshape(-1) * num_classes + logits.argmax(1).reshape(-1)
                confusion += torch.bincount(pairs, minlength=num_classes * num_classes)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.global_step += 1
            n_images += self.sampler.global_size(step)
            if pending is not None:
                losses.append(self._log_step(epoch, *pending, live, bar))
            # Sum over processes on the device; the mean is read later.
            pending = (mdist.sum_over_processes(loss), step, lr)
        if pending is not None:
            losses.append(self._log_step(epoch, *pending, live, bar))
        self.epoch_confusion = (
            mdist.sum_over_processes(confusion).cpu().numpy().reshape(num_classes, num_classes)
        )
        return (float(np.mean(losses)) if losses else float("nan")), n_images

    def _log_step(
        self, epoch: int, loss_sum: torch.Tensor, step: int, lr: float, live: Any, bar: Any
    ) -> float:
        """Read step ``step``'s loss (summed over processes), check it and log it."""
        value = float(loss_sum) / self.info.world_size
        global_step = epoch * self.steps_per_epoch + step + 1
        if not math.isfinite(value):
            raise FloatingPointError(
                f"train: non-finite loss ({value}) at epoch {epoch + 1}, step "
                f"{step + 1}/{self.steps_per_epoch} (global step {global_step}, "
                f"lr {lr:.3g}); stopped. {self.out_dir / 'last.pt'} keeps the last good "
                f"epoch ({epoch})"
            )
        if live is not None:
            live.step = global_step
            live.log_metric("train/loss", value)
            live.log_metric("train/lr", lr)
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
            bar.update(1)
        return value

    def _finish(
        self, total_seconds: float, train_seconds: float, images_seen: int
    ) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        epochs = int(cfg.epochs)  # type: ignore[arg-type]
        if self.rule == "last":
            selected_epoch, state = epochs, None
        else:
            selected_epoch, state = self.best_epoch, self.best_state
            if state is None:  # cannot happen: the last epoch is always validated
                raise RuntimeError("selection: no best-validation weights were recorded")
        if info.is_main:
            save_checkpoint(
                self.out_dir / "model.pt",
                self._payload(int(selected_epoch), False, None, state),  # type: ignore[arg-type]
            )
        selection = self._selection(epochs)
        result = {
            "model_config": self.model_cfg.to_dict(),
            "train_config": cfg.to_dict(),
            "data": self.data_info,
            "manifest": str(self.manifest_path),
            "selection": selection,
            "selected_epoch": selected_epoch,
            "epochs_completed": epochs,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "max_steps": self.max_steps,
            "world_size": info.world_size,
            "batch_size_per_process": self.local_batch,
            "device": str(self.device),
            "bf16": self.amp_dtype is not None,
            "resumed_from_epoch": self.resumed_from,
            "history": self.history,
            "timings": {
                "total_seconds": total_seconds,
                "train_seconds": train_seconds,
                "train_images_per_second": images_seen / train_seconds
                if train_seconds > 0
                else None,
                "epochs_this_run": epochs - (self.resumed_from or 0),
            },
            "torch_version": str(torch.__version__),
            "machine": kernel_record(),
            "final_epoch_loss": self.history[-1]["loss"] if self.history else None,
        }
        if info.is_main:
            write_json(self.out_dir / "train.json", result)
        return result
