"""Distributed data parallel helpers: process groups, synchronised BatchNorm, reductions.

Training on several devices runs one process per device. The processes come either from
``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` in
the environment) or from :func:`spawn` (``train.devices > 1``). The backend is NCCL on CUDA
and gloo on CPU.

Two things make a run on W processes with ``batch_size / W`` images each compute the same
update as one process with ``batch_size`` images (up to float rounding):

* BatchNorm statistics are computed over the global batch (``torch.nn.SyncBatchNorm`` on
  CUDA; :class:`CPUSyncBatchNorm` on CPU, where torch's version refuses to run);
* the batch-wide soft-Dice sums are added across processes with a differentiable
  all-reduce (:func:`all_reduce_sum`) before the Dice ratio is taken;
* :class:`GlobalBatchSampler` cuts one seeded permutation into global batches exactly as one
  process would, and deals each global batch out to the processes without padding: when the
  slice count is not a multiple of ``batch_size``, the last global batch is split unevenly
  and each process weights its cross-entropy by its share (:meth:`GlobalBatchSampler.ce_scale`).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the process group.

    Attributes:
        rank: Global rank (0 when not distributed).
        world_size: Number of processes (1 when not distributed).
        local_rank: Rank on this machine, the CUDA device index.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs and writes files."""
        return self.rank == 0


def env_info() -> DistInfo | None:
    """The process-group position torchrun put in the environment, or None if absent.

    Raises:
        ValueError: When the variables are present but malformed.
    """
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as exc:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK: not integers ({exc})") from exc
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK/WORLD_SIZE: rank {rank} outside a world of {world}")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def free_port() -> int:
    """A TCP port that is free on localhost right now (for :func:`spawn`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_process_group(info: DistInfo, device_type: str, timeout_s: float = 7200.0) -> None:
    """Join the process group (``env://`` rendezvous), NCCL on CUDA, gloo elsewhere."""
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=info.rank,
        world_size=info.world_size,
        timeout=timedelta(seconds=timeout_s),
    )


def destroy_process_group() -> None:
    """Leave the process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Differentiable sum over processes (identity outside a process group).

    The backward pass all-reduces the incoming gradients too; with DDP's gradient averaging
    over W processes this yields exactly the gradient of the loss on the summed tensor.
    """
    if not is_initialized():
        return tensor
    return _AllReduceSum.apply(tensor)


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every copy is the sum of all copies' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def sum_over_processes(tensor: Tensor) -> Tensor:
    """Element-wise sum over processes of a detached tensor (a copy; identity when alone)."""
    out = tensor.detach().clone()
    if is_initialized():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all processes.

    Works on any device (``torch.nn.SyncBatchNorm`` requires a GPU). Outside a process
    group, or in eval mode, it is a plain ``BatchNorm2d``. Same parameters and buffers as
    ``BatchNorm2d``, so state_dicts are interchangeable.

    Input (B, C, H, W); output the same shape, dtype and device.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and is_initialized()):
            return super().forward(input)
        # Statistics in at least float32 (half-precision inputs under autocast).
        x = input if input.dtype in (torch.float32, torch.float64) else input.float()
        c = x.shape[1]
        local_n = torch.tensor(
            [x.numel() // c], dtype=x.dtype, device=x.device
        )  # pixels per channel here
        # Two passes (mean, then centred squares) like the local kernel, for accuracy.
        stats = all_reduce_sum(torch.cat([x.sum(dim=(0, 2, 3)), local_n]))
        n = stats[-1]
        mean = stats[:-1] / n
        centred = x - mean.view(1, c, 1, 1)
        var = all_reduce_sum((centred * centred).sum(dim=(0, 2, 3))) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * n / torch.clamp(n - 1, min=1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(input.dtype)


def convert_sync_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Replace every ``BatchNorm2d`` with a synchronised one (in place where possible).

    CUDA uses ``torch.nn.SyncBatchNorm``; other devices :class:`CPUSyncBatchNorm`.
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        out = module
        if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CPUSyncBatchNorm):
            ref = next(iter(module.parameters()), None)
            if ref is None:
                ref = next(iter(module.buffers()), torch.empty(0))
            out = CPUSyncBatchNorm(
                module.num_features,
                eps=module.eps,
                momentum=module.momentum,
                affine=module.affine,
                track_running_stats=module.track_running_stats,
                device=ref.device,
                dtype=ref.dtype,
            )
            out.load_state_dict(module.state_dict())
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, convert(child))
        return out

    return convert(model)


def spawn(fn: Callable[..., Any], nprocs: int, args: tuple[Any, ...]) -> None:
    """Start ``nprocs`` processes running ``fn(rank, nprocs, *args)`` with a fresh port.

    Sets ``MASTER_ADDR``/``MASTER_PORT`` for the ``env://`` rendezvous.
    """
    import torch.multiprocessing as mp

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    mp.spawn(fn, args=(nprocs, *args), nprocs=nprocs, join=True)


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of slice indices that are the same global batches for any process count.

    Each epoch draws ``torch.randperm(n)`` from a generator seeded with ``seed + epoch``
    (the permutation of a one-process ``DistributedSampler``), cuts it into global batches of
    ``batch_size`` (the last one shorter when ``batch_size`` does not divide ``n``) and gives
    process ``rank`` the positions ``rank, rank + W, ...`` of each global batch. Nothing is
    padded or repeated, so W processes see exactly the slices one process sees.

    Args:
        n: Number of slices in the dataset.
        batch_size: The global batch (``W`` must divide it).
        world_size: Number of processes ``W``.
        rank: This process's rank.
        seed: Base seed of the shuffle.

    Raises:
        ValueError: A last global batch smaller than ``W`` (a process would get no slice).
    """

    def __init__(self, n: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0):
        if n < 1 or batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"GlobalBatchSampler: bad n={n}, batch_size={batch_size}, "
                f"world_size={world_size}, rank={rank}"
            )
        last = n - (math.ceil(n / batch_size) - 1) * batch_size
        if last < world_size:
            raise ValueError(
                f"batch_size: {n} training slices in global batches of {batch_size} leave a "
                f"last batch of {last} slice(s) for {world_size} processes, so a process would "
                "get none; change batch_size or the number of processes"
            )
        self.n, self.batch_size = n, batch_size
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def global_size(self, step: int) -> int:
        """Slices in global batch ``step`` (0-based) of an epoch."""
        return min(self.batch_size, self.n - step * self.batch_size)

    def local_size(self, step: int) -> int:
        """Slices this process gets in global batch ``step``."""
        return len(range(self.rank, self.global_size(step), self.world_size))

    def ce_scale(self, step: int) -> float:
        """Weight of this process's mean cross-entropy in global batch ``step``.

        DDP averages gradients over the W processes; scaling each local mean by
        ``W * local / global`` makes that average the mean over the global batch. It is
        exactly 1.0 whenever the batch splits evenly (always on one process).
        """
        local, glob = self.local_size(step), self.global_size(step)
        return 1.0 if local * self.world_size == glob else self.world_size * local / glob

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        for start in range(0, self.n, self.batch_size):
            yield order[start : start + self.batch_size][self.rank :: self.world_size]
