"""Training-data loading at the paper's size: slices per second per DataLoader worker.

Synthetic Synapse slices of 512 x 512 in the ``train_npz`` format of the real release (one
uncompressed ``.npz`` per slice, ``image`` float32 in [0, 1] and ``label``), listed in a
``dataset.json``, are loaded exactly as training loads them: :class:`mtunet.data.SliceDataset`
(read, label check, the published augmentation, the order-3 zoom to 224 x 224) through a
DataLoader over :class:`mtunet.distributed.GlobalBatchSampler` with the training loop's
seeding, batches of 12, for several epochs. Variants:

* ``workers=N``: N DataLoader workers, recreated every epoch as training does (N = 0 loads in
  the main process);
* ``persistent``: the workers kept between epochs; the epoch then travels with each index
  (:class:`EpochKeyedSlices`), since a kept worker never sees the main process's
  ``set_epoch``;
* ``prefetch=4``: four batches queued per worker instead of two;
* ``cached``: every slice read once and kept in memory (decoded, label-checked), as MONAI's
  ``CacheDataset`` keeps the result of the deterministic transforms, the random augmentation
  and the zoom still run per item (:class:`CachedSlices`).

Every variant must yield the same batches as ``workers=0``, bit for bit (a SHA-256 over every
image and label tensor of every epoch): a variant that does not is reported and fails the run.
The rates give the workers one run needs to keep a GPU busy at the step rates docs/benchmarks.md
measured on one H200 (paper network, batch 12): 236.3 img/s compiled bfloat16 and 137.2 img/s
eager float32.

Usage: ``python benchmarks/loader_speed.py [--slices 240] [--epochs 3] [--workers 0 1 2]``;
``--size 64 --img-size 32 --slices 24 --epochs 2`` is the smoke test's tiny run. Run it on a
machine with nothing else running; it prints a table and writes
``benchmarks/results/loader_speed.json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import machine_info  # benchmarks/ is the script's folder, on sys.path
from torch.utils.data import DataLoader, Dataset, Sampler

from mtunet.data import SliceDataset, load_manifest
from mtunet.data.common import SYNAPSE_CLASSES
from mtunet.distributed import GlobalBatchSampler
from mtunet.fileio import write_json
from mtunet.training.build import seed_worker

RESULTS = Path(__file__).resolve().parent / "results" / "loader_speed.json"
#: Training step rates of the paper network on one H200 (docs/benchmarks.md, train_speed_cuda.json).
GPU_STEP_RATES = {"compiled bfloat16": 236.3, "eager float32": 137.2}
BATCH = 12
SEED = 1234


def write_slices(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` synthetic 512 x 512 (``size``) Synapse slices and their ``dataset.json``."""
    rng = np.random.default_rng(seed)
    (root / "train_npz").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    names = []
    for i in range(n):
        label = np.zeros((size, size), np.float32)  # the release stores labels as float32
        for c in range(1, len(SYNAPSE_CLASSES)):
            cy, cx = rng.integers(size // 8, size - size // 8, 2)
            r = rng.integers(size // 40 + 1, size // 10 + 2)
            label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = c
        image = np.clip(label / 8 + rng.normal(0, 0.05, label.shape), 0, 1).astype(np.float32)
        name = f"train_npz/case{i // 100:04d}_slice{i % 100:03d}.npz"
        np.savez(root / name, image=image, label=label)
        names.append(name)
    cases = sorted({n[10:18] for n in names})
    manifest = {
        "name": "synapse",
        "source": "release",
        "modality": "CT",
        "num_classes": len(SYNAPSE_CLASSES),
        "class_names": list(SYNAPSE_CLASSES),
        "preprocessing": {"kind": "ct_window", "clip": [-125, 275]},
        "splits": {
            "train": {"cases": cases, "slices": names, "volumes": []},
            "test": {"cases": [], "slices": [], "volumes": []},
        },
    }
    write_json(root / "dataset.json", manifest)
    return root / "dataset.json"


class CachedSlices(SliceDataset):
    """:class:`SliceDataset` with every slice read and label-checked once, kept in memory.

    Only :meth:`SliceDataset.read` is cached: the random augmentation and the zoom still run
    per item from the same per-sample generator, so the items are the same bits as the
    uncached dataset's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = [SliceDataset.read(self, i) for i in range(len(self.paths))]

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The slice as read at construction."""
        return self.cache[index]


class EpochKeyedSlices(Dataset):
    """Items addressed by ``(epoch, index)``, so kept (persistent) workers draw each
    epoch's augmentation although they never see ``set_epoch``."""

    def __init__(self, slices: SliceDataset) -> None:
        self.slices = slices

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        self.slices.epoch = epoch
        return self.slices[index]


class EpochKeyedBatches(Sampler[list[tuple[int, int]]]):
    """:class:`GlobalBatchSampler`'s batches with the epoch attached to every index."""

    def __init__(self, sampler: GlobalBatchSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, i) for i in batch]


@dataclass(frozen=True)
class Variant:
    """One way of loading. ``prefetch`` None keeps DataLoader's default (2 per worker)."""

    name: str
    workers: int
    persistent: bool = False
    prefetch: int | None = None
    cached: bool = False


def variants(worker_counts: list[int]) -> list[Variant]:
    """Every worker count, then the other levers at the largest count (at least 1)."""
    out = [Variant(f"workers={n}", n) for n in worker_counts]
    top = max(max(worker_counts), 1)
    out += [
        Variant(f"workers={top}, persistent", top, persistent=True),
        Variant(f"workers={top}, prefetch=4", top, prefetch=4),
        Variant(f"workers={top}, cached", top, cached=True),
        Variant(f"workers={top}, cached, persistent", top, persistent=True, cached=True),
    ]
    return out


def measure(manifest: Path, img_size: int, variant: Variant, epochs: int) -> dict[str, Any]:
    """Load ``epochs`` epochs; the rate over all but the first (which starts the workers and
    fills the cache when there is one) and the digest of every batch."""
    built = time.perf_counter()
    cls = CachedSlices if variant.cached else SliceDataset
    data = cls(load_manifest(manifest), "train", img_size, augment=True, seed=SEED)
    build_seconds = time.perf_counter() - built
    sampler = GlobalBatchSampler(len(data), BATCH, seed=SEED)
    dataset: Dataset = EpochKeyedSlices(data) if variant.persistent else data
    batches: Sampler = EpochKeyedBatches(sampler) if variant.persistent else sampler
    gen = torch.Generator()
    extra = {"prefetch_factor": variant.prefetch} if variant.prefetch else {}
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=variant.workers,
        generator=gen,
        worker_init_fn=seed_worker,
        persistent_workers=variant.persistent,
        **extra,
    )
    digest = hashlib.sha256()
    epoch_seconds = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        data.set_epoch(epoch)
        gen.manual_seed(SEED + epoch)  # as mtunet.training.epoch does
        start = time.perf_counter()
        for batch in loader:
            digest.update(batch["image"].numpy().tobytes())
            digest.update(batch["label"].numpy().tobytes())
        epoch_seconds.append(time.perf_counter() - start)
    timed = epoch_seconds[1:] or epoch_seconds
    rate = len(data) * len(timed) / sum(timed)
    return {
        "variant": variant.name,
        "workers": variant.workers,
        "slices_per_second": rate,
        "slices_per_second_per_worker": rate / max(1, variant.workers),
        "first_epoch_seconds": epoch_seconds[0],
        "epoch_seconds": epoch_seconds,
        "dataset_build_seconds": build_seconds,
        "sha256": digest.hexdigest(),
    }


def workers_needed(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Loader workers one run needs to keep up with each GPU step rate, per variant that
    uses workers (its own per-worker rate)."""
    return {
        label: {
            r["variant"]: math.ceil(rate / r["slices_per_second_per_worker"])
            for r in rows
            if r["workers"] > 0
        }
        for label, rate in GPU_STEP_RATES.items()
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write the slices, measure every variant, check their bits; the results record."""
    torch.set_num_threads(1)  # the loader's work is numpy/scipy; keep torch off the cores
    with tempfile.TemporaryDirectory(prefix="loader_speed_") as tmp:
        manifest = write_slices(Path(tmp), args.slices, args.size)
        rows = [measure(manifest, args.img_size, v, args.epochs) for v in variants(args.workers)]
    reference = rows[0]["sha256"]
    for r in rows:
        r["same_batches_as_workers_0"] = r["sha256"] == reference
    return {
        "setup": {
            "slices": args.slices,
            "size": args.size,
            "img_size": args.img_size,
            "epochs": args.epochs,
            "timed_epochs": max(1, args.epochs - 1),
            "batch_size": BATCH,
            "gpu_step_rates_img_per_second": GPU_STEP_RATES,
        },
        "machine": machine_info("cpu"),
        "rows": rows,
        "workers_needed": workers_needed(rows),
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        "| variant | slices/s | per worker | first epoch (s) | same bits |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['variant']} | {r['slices_per_second']:.1f} | "
            f"{r['slices_per_second_per_worker']:.1f} | {r['first_epoch_seconds']:.2f} | "
            f"{'yes' if r['same_batches_as_workers_0'] else 'NO'} |"
        )
    for label, needs in result["workers_needed"].items():
        shown = ", ".join(f"{v}: {n}" for v, n in needs.items())
        lines.append(f"workers one run needs at {GPU_STEP_RATES[label]} img/s ({label}): {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=240, help="slices per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is not timed)")
    parser.add_argument("--size", type=int, default=512, help="stored slice size (512 real)")
    parser.add_argument("--img-size", type=int, default=224, help="training input (224)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = parser.parse_args(argv)
    if args.slices < BATCH or args.epochs < 1 or min(args.workers) < 0 or 0 not in args.workers:
        parser.error("need --slices >= 12, --epochs >= 1, --workers >= 0 including 0")
    result = run(args)
    print(_table(result))
    write_json(args.out, result)
    print(f"wrote {args.out}")
    bad = [r["variant"] for r in result["rows"] if not r["same_batches_as_workers_0"]]
    if bad:
        print(f"DIFFERENT BATCHES: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
