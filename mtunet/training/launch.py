"""Starting training: one process, ``train.devices`` spawned processes, or under ``torchrun``.

:func:`train` is the entry point (see :mod:`mtunet.training` for what it writes). Each
process resolves its device, joins the process group when there are several, and trains
with deterministic kernels (:func:`determinism`) through a
:class:`~mtunet.training.loop.Trainer`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mtunet import distributed as mdist
from mtunet.numerics import pin_cpu_kernels, pin_denormals, pin_threads
from mtunet.training.config import TrainConfig
from mtunet.training.loop import Trainer
from mtunet.training.spec import RunSpec


def train(
    train_cfg: TrainConfig,
    model_cfg: Any,
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train a network on a preprocessed dataset; :mod:`mtunet.training` lists the outputs.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) this process trains as one
    rank. Otherwise ``train_cfg.devices > 1`` spawns that many processes, and 1 trains here.

    Args:
        train_cfg: Training settings.
        model_cfg: A :class:`~mtunet.model.registry.ModelSpec` (any registered network) or an
            ``MTUNetConfig`` (MT-UNet); ``num_classes`` and ``in_channels`` are replaced by
            the dataset's, ``img_size`` by ``train_cfg.img_size`` when that is set.
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
    pin_threads(train_cfg.threads)
    pin_denormals(train_cfg.flush_denormals)
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
    # CPU workers share the cores instead of each taking all of them, unless told how many.
    torch.set_num_threads(train_cfg.threads or max(1, (os.cpu_count() or 1) // world_size))
    pin_denormals(train_cfg.flush_denormals)  # a spawned process starts with IEEE arithmetic
    _run_process(info, train_cfg, model_cfg, manifest_path, out_dir, live_dir)


def _run_process(
    info: mdist.DistInfo,
    train_cfg: TrainConfig,
    model_cfg: Any,
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    live_dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    device = resolve_training_device(train_cfg.device, info)
    if info.distributed:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        mdist.init_process_group(info, device.type)
    try:
        with determinism(train_cfg.deterministic, device):
            spec = RunSpec(info, device, train_cfg, model_cfg, manifest_path, out_dir, live_dir)
            return Trainer(spec).run()
    finally:
        if info.distributed:
            mdist.destroy_process_group()


def resolve_training_device(name: str, info: mdist.DistInfo) -> torch.device:
    """The device this process trains on: ``name`` resolved, and under DDP its own GPU."""
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
def determinism(enabled: bool, device: torch.device) -> Iterator[None]:
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
