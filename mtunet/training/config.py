"""Training settings: :class:`TrainConfig`, the published presets and the runtime fields.

``TrainConfig`` is the ``train`` section of ``params.yaml``; :meth:`TrainConfig.resolved`
fills the fields left None from the chosen preset. :data:`RUNTIME_FIELDS` do not change the
weights, so a restart that differs only in them resumes (:mod:`mtunet.training.state`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mtunet.config import TRAIN_RUNTIME_FIELDS, check, from_dict, to_dict
from mtunet.numerics import CPU_KERNELS, DENORMALS_RULE, THREADS_RULE, valid_threads

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
RUNTIME_FIELDS = TRAIN_RUNTIME_FIELDS

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

#: How ``mtunet study run`` passes a run's CPU allocation to the run's process.
CPUS_ENV = "MTUNET_CPUS"
#: The most loader workers ``num_workers: auto`` starts. At about 12 ms per paper-size slice
#: and worker (issue 17), 8 workers feed some 660 slices/s, 2.8x the fastest measured GPU step
#: (236 img/s); more would only hold memory.
MAX_AUTO_WORKERS = 8


def available_cpus() -> int:
    """The CPUs this process may use.

    ``MTUNET_CPUS`` (the allocation ``mtunet study run`` gives the run) when set, else the
    process's CPU affinity (what a container, ``taskset`` or SLURM allows), else the machine's
    count.

    Raises:
        ValueError: ``MTUNET_CPUS`` is set to something other than a positive integer.
    """
    value = os.environ.get(CPUS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{CPUS_ENV}: expected a positive integer, got {value!r}")
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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
        cpu_kernels: ``"native"`` (the fastest kernels this CPU has), ``"portable"``
            (AVX2 kernels on x86-64: CPUs of one vendor compute the same bits whatever
            their vector width) or ``"compatible"`` (also the same bits on Intel and AMD,
            with slower matrix products); :mod:`mtunet.numerics`.
        threads: torch's CPU threads for this run, or None for the process's own (one per
            core, or ``OMP_NUM_THREADS``). The count decides how MKL and oneDNN split their
            sums, so a fixed count gives the same bits on machines with other core counts;
            each process of a multi-process run takes this many.
        flush_denormals: Compute denormal floats as zero (FTZ/DAZ) in the training process:
            a trained network's step is up to 3.5x faster on x86 CPUs, and its bits differ
            from IEEE arithmetic's; :func:`mtunet.numerics.pin_denormals`.
        num_workers: DataLoader worker processes (0 loads in the main process), or
            ``"auto"`` (:func:`loader_workers`): on a GPU (CUDA or MPS) one worker per CPU
            the process has beyond its own core, at most :data:`MAX_AUTO_WORKERS`; on the CPU
            none, since there every worker takes a core from the training threads.
        pin_memory: Pinned host memory for the batches (CUDA only).
        selection: ``"auto"`` (best validation epoch when the dataset has validation volumes,
            else the last epoch), ``"last"`` or ``"best_val"`` (error without a validation
            split). The test split is never used.
        val_every: Validate every this many epochs (and always after the last epoch).
        val_batch_size: Slices per forward pass during validation (does not change results).
        checkpoint_every: Write ``last.pt``, the point an interrupted run resumes from, every
            this many epochs and after the last (does not change results: a resumed run
            redoes the epochs since, bit for bit). Each write copies the weights, the
            optimizer state and the best epoch's weights, so on short epochs it is a
            noticeable share of the run.
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
    cpu_kernels: Literal["native", "portable", "compatible"] = "native"
    threads: int | None = None
    flush_denormals: bool = True
    num_workers: int | Literal["auto"] = 0
    pin_memory: bool = True
    selection: Literal["auto", "last", "best_val"] = "auto"
    val_every: int = 1
    val_batch_size: int = 16
    checkpoint_every: int = 1
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
            self.cpu_kernels in CPU_KERNELS,
            "cpu_kernels",
            f"must be one of {list(CPU_KERNELS)}, got {self.cpu_kernels!r}",
        )
        check(valid_threads(self.threads), "threads", f"{THREADS_RULE}, got {self.threads!r}")
        check(
            isinstance(self.flush_denormals, bool),
            "flush_denormals",
            f"{DENORMALS_RULE}, got {self.flush_denormals!r}",
        )
        check(
            self.num_workers == "auto"
            or (
                isinstance(self.num_workers, int)
                and not isinstance(self.num_workers, bool)
                and self.num_workers >= 0
            ),
            "num_workers",
            f"must be an integer >= 0 or 'auto', got {self.num_workers!r}",
        )
        check(
            self.selection in ("auto", "last", "best_val"),
            "selection",
            f"must be 'auto', 'last' or 'best_val', got {self.selection!r}",
        )
        check(self.val_every >= 1, "val_every", f"must be >= 1, got {self.val_every}")
        check(
            self.val_batch_size >= 1, "val_batch_size", f"must be >= 1, got {self.val_batch_size}"
        )
        check(
            self.checkpoint_every >= 1,
            "checkpoint_every",
            f"must be >= 1, got {self.checkpoint_every}",
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


def loader_workers(num_workers: int | str, device_type: str, processes: int = 1) -> int:
    """The DataLoader workers of one of ``processes`` training processes on ``device_type``.

    A number (``train.num_workers``) is taken as given. ``"auto"`` on ``"cpu"`` is 0: the
    training threads use every core, and a worker takes one of them (docs/benchmarks.md, "Training loop
    speed": 0.63x with one worker on 2 cores), while loading in the main process costs a few
    per cent of a step. On a GPU, the process's share of :func:`available_cpus` less one core
    for the process itself (which queues the GPU's work), at most :data:`MAX_AUTO_WORKERS`.
    """
    if num_workers != "auto":
        return int(num_workers)
    if device_type == "cpu":
        return 0
    # torchrun says how many processes share this machine; else all of them do.
    local = os.environ.get("LOCAL_WORLD_SIZE", "")
    share = available_cpus() // max(1, int(local) if local.isdigit() else processes)
    return max(0, min(MAX_AUTO_WORKERS, share - 1))
