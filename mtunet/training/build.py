"""Everything a run builds before its first step: network, optimizer, loss, batches.

:func:`build_network` is the one place the network is constructed; :func:`build` seeds,
constructs it, loads the resumed weights, places it on the device (SyncBatchNorm and
DistributedDataParallel under several processes) and builds optimizer, loss, sampler and
DataLoader, in the order that makes runs bit-identical.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mtunet import distributed as mdist
from mtunet.losses import CEDiceLoss
from mtunet.training.config import TrainConfig, loader_workers
from mtunet.training.spec import RunSpec
from mtunet.training.state import find_resume


def build_network(model: Any) -> nn.Module:
    """The network a run trains, freshly initialised from the current torch RNG state.

    Args:
        model: A :class:`~mtunet.model.registry.ModelSpec` (or an ``MTUNetConfig``).
    """
    from mtunet.model import MTUNetConfig
    from mtunet.model.registry import ModelSpec

    if isinstance(model, MTUNetConfig):
        model = ModelSpec("mtunet", {}, model)
    return model.build()


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker from its torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class Components:
    """The built objects one training process steps with.

    Attributes:
        raw_model: The plain network (checkpoints and validation use it).
        model: ``raw_model``, wrapped in DistributedDataParallel under several processes.
        forward: What the loop calls: ``model``, or ``torch.compile(model)``.
        optimizer: Adam or SGD over ``raw_model``'s parameters.
        criterion: The weighted cross-entropy + soft Dice loss.
        sampler: The global batches, this process's share of each.
        loader_gen: The DataLoader's generator (reseeded every epoch).
        loader: The training batches.
        steps_per_epoch: Optimizer steps per epoch (``max_steps_per_epoch`` applied).
        max_steps: Optimizer steps of the whole run.
    """

    raw_model: nn.Module
    model: nn.Module
    forward: Any
    optimizer: torch.optim.Optimizer
    criterion: CEDiceLoss
    sampler: mdist.GlobalBatchSampler
    loader_gen: torch.Generator
    loader: Any
    steps_per_epoch: int
    max_steps: int


def build(spec: RunSpec) -> tuple[Components, dict[str, Any] | None]:
    """Build a run's components; returns them and the resumable ``last.pt`` payload or None.

    The returned network already holds the resumed weights; the optimizer, progress and RNG
    states of the payload are for the caller to restore.
    """
    from torch.utils.data import DataLoader

    cfg, info, device = spec.cfg, spec.info, spec.device
    torch.manual_seed(cfg.seed)
    model = build_network(spec.model)
    if info.rank > 0:
        # Different dropout masks per process (rank 0 keeps the single-process stream).
        torch.manual_seed(cfg.seed + info.rank)
    resume_ckpt = find_resume(spec.out_dir / "last.pt", cfg, spec.expected(), info.is_main)
    if resume_ckpt is not None:
        model.load_state_dict(resume_ckpt["model"])
    if info.distributed:
        model = mdist.convert_sync_batchnorm(model, device.type)
    model.to(device, memory_format=spec.memory_format)
    wrapped: nn.Module = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # The official network has parameters its forward never uses (e.g. the
        # global-attention ``out`` projection), always the same ones: a static graph
        # lets DDP learn them once instead of searching the graph every step.
        wrapped = DDP(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            static_graph=True,
        )
    optimizer = make_optimizer(cfg, model)
    # The forward the loop calls; checkpoints always come from the plain module.
    forward = torch.compile(wrapped) if cfg.compile else wrapped
    criterion = CEDiceLoss(
        spec.model_cfg.num_classes,
        ce_weight=cfg.ce_weight,
        dice_weight=cfg.dice_weight,
        reduce_sums=mdist.all_reduce_sum if info.distributed else None,
    )
    # The same global batches for one and many processes, without padding.
    sampler = mdist.GlobalBatchSampler(
        len(spec.train_set), cfg.batch_size, info.world_size, info.rank, cfg.seed
    )
    _check_single_slice_batch(spec, sampler, model)
    loader_gen = torch.Generator()
    loader = DataLoader(
        spec.train_set,
        batch_sampler=sampler,
        num_workers=loader_workers(cfg.num_workers, device.type, info.world_size),
        pin_memory=cfg.pin_memory and device.type == "cuda",
        generator=loader_gen,
        worker_init_fn=seed_worker,
        # Workers are recreated each epoch so they see the dataset's new epoch.
        persistent_workers=False,
    )
    steps_per_epoch = len(loader)
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    parts = Components(
        raw_model=model,
        model=wrapped,
        forward=forward,
        optimizer=optimizer,
        criterion=criterion,
        sampler=sampler,
        loader_gen=loader_gen,
        loader=loader,
        steps_per_epoch=steps_per_epoch,
        max_steps=cfg.epochs * steps_per_epoch,  # type: ignore[operator]
    )
    return parts, resume_ckpt


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names (Adam or SGD, fused when ``cfg.fused_optimizer``)."""
    fused = {"fused": True} if cfg.fused_optimizer else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused
        )
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        **fused,
    )


def _check_single_slice_batch(
    spec: RunSpec, sampler: mdist.GlobalBatchSampler, model: nn.Module
) -> None:
    """Refuse, before the first step, a last batch of one slice that BatchNorm cannot take.

    A network whose deepest BatchNorm sees a 1 x 1 map (MT-UNet at ``img_size`` 32 or
    less) has a single value per channel in a one-slice batch, and BatchNorm raises in
    the middle of the first epoch. A probe on a copy finds out without touching the run.
    """
    n, batch = len(spec.train_set), int(spec.cfg.batch_size)  # type: ignore[arg-type]
    if sampler.global_size(len(sampler) - 1) != 1:
        return
    probe = copy.deepcopy(model).train()
    x = torch.zeros(1, spec.model_cfg.in_channels, *spec.img_size)
    try:
        with torch.no_grad():
            probe(x)
    except ValueError as exc:
        if "more than 1 value per channel" not in str(exc):
            raise
        raise ValueError(
            f"batch_size/img_size: {n} training slices in batches of {batch} leave a last "
            f"batch of one slice, and at img_size {list(spec.img_size)} the network's "
            "BatchNorm then sees a single value per channel; choose a batch_size whose "
            "remainder is not 1 or a larger img_size"
        ) from exc
