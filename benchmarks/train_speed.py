"""Training and inference speed of MT-UNet for the study's default and the paper's config.

* Training: images/s of ``mtunet.training.epoch.optimizer_step``, the step training runs
  (forward, 0.5 CE + 0.5 soft Dice, per-class pixel counts, backward, optimizer step; Adam as
  the ``mtunet`` preset), on random batches of the
  training input size, after warm-up steps. Data loading is not included (it runs in
  DataLoader workers in parallel with the step).
* Inference: slices/s of ``mtunet.inference.predict_volume`` on a random volume of
  ``--slices`` slices of ``--slice-size``\\ :sup:`2` pixels (cubic resize to the input size,
  batched forward, argmax, nearest resize back), as evaluation runs it.

Configurations: ``default`` is ``params.yaml``'s ``model`` section (when the file exists;
otherwise width_mult 0.25 at 224 x 224) with the batch size of its ``train`` section,
``paper`` is the full-width network at 224 x 224 with batch 12 (MT-UNet's recipe).

``--compile`` runs both through ``torch.compile``; the first (warm-up) step's and volume's
seconds, which include the compilation, are reported separately.

Prints a table and merges the rows into ``benchmarks/results/train_speed_<device>.json``
(sorted keys; rows keyed by configuration, dtype and compile, each with the settings it ran
with) with the machine of the latest run. Usage::

    python benchmarks/train_speed.py --device cpu --steps 2 --warmup 1
    python benchmarks/train_speed.py --device cuda --bf16 --compile --steps 20 --warmup 5
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import machine_info, merge_rows  # benchmarks/ is the script's folder, on sys.path
from torch import nn

from mtunet.config import load_params, train_section
from mtunet.fileio import write_json
from mtunet.inference import predict_volume, resolve_device
from mtunet.losses import CEDiceLoss
from mtunet.model import MTUNet, MTUNetConfig
from mtunet.model.registry import ModelSpec
from mtunet.training import TrainConfig
from mtunet.training.epoch import optimizer_step

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configurations(params_path: Path) -> dict[str, tuple[MTUNetConfig, int]]:
    """``name -> (model config, batch size)`` for the default and the paper config."""
    model_cfg = MTUNetConfig(width_mult=0.25, img_size=224)
    batch = 12
    if params_path.is_file():
        params = load_params(params_path)
        model_cfg = ModelSpec.from_params(params.get("model")).config
        train = train_section(params, "synapse")
        batch = int(TrainConfig.from_dict(train, "train").resolved().batch_size)
    return {
        "default": (dataclasses.replace(model_cfg, num_classes=9, in_channels=1), batch),
        "paper": (MTUNetConfig(img_size=224, num_classes=9), 12),
    }


def time_training(
    cfg: MTUNetConfig,
    batch: int,
    device: torch.device,
    amp: torch.dtype | None,
    steps: int,
    warmup: int,
    compile_model: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
) -> dict[str, float]:
    """Median seconds per training step, images/s and the first step's seconds.

    ``memory_format`` applies to the network and the batch; ``make_optimizer`` builds the
    optimizer from the network (default: Adam, lr 1e-4, weight decay 1e-4, per parameter).
    """
    torch.manual_seed(0)
    model = MTUNet(cfg).to(device, memory_format=memory_format).train()
    runner = torch.compile(model) if compile_model else model
    optimizer = (
        make_optimizer(model)
        if make_optimizer is not None
        else torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    )
    loss_fn = CEDiceLoss(cfg.num_classes)
    h, w = cfg.img_size
    x = torch.rand(batch, cfg.in_channels, h, w, device=device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, cfg.num_classes, (batch, h, w), device=device)
    confusion = torch.zeros(cfg.num_classes**2, dtype=torch.int64, device=device)
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t = time.perf_counter()
        optimizer_step(
            runner, loss_fn, optimizer, x, y, ce_scale=1.0, amp_dtype=amp, confusion=confusion
        )
        _sync(device)
        if i == 0:
            first = time.perf_counter() - t
        if i >= warmup:
            times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return {
        "train_step_seconds": sec,
        "train_images_per_s": batch / sec,
        "train_first_step_seconds": first,
    }


def time_inference(
    cfg: MTUNetConfig,
    device: torch.device,
    amp: torch.dtype | None,
    slices: int,
    slice_size: int,
    batch: int,
    repeats: int,
    compile_model: bool = False,
) -> dict[str, float]:
    """Median seconds per volume of ``predict_volume``, slices/s and the warm-up's seconds."""
    torch.manual_seed(0)
    model = MTUNet(cfg).to(device).eval()
    runner: Any = torch.compile(model) if compile_model else model
    volume = np.random.default_rng(0).random((slices, slice_size, slice_size), dtype=np.float32)
    # Compiled: warm up on the whole volume, so the timed runs see only compiled shapes.
    warm = volume if compile_model else volume[: min(2, slices)]
    t = time.perf_counter()
    predict_volume(runner, warm, cfg.img_size, batch, amp_dtype=amp)
    _sync(device)
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        predict_volume(runner, volume, cfg.img_size, batch, amp_dtype=amp)
        _sync(device)
        times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return {
        "inference_volume_seconds": sec,
        "inference_slices_per_s": slices / sec,
        "inference_warmup_seconds": first,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA and CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--configs", nargs="+", default=["default", "paper"])
    p.add_argument("--steps", type=int, default=3, help="timed training steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps first")
    p.add_argument("--slices", type=int, default=16, help="slices of the inference volume")
    p.add_argument("--slice-size", type=int, default=512, help="in-plane size of the volume")
    p.add_argument("--infer-batch", type=int, default=16, help="predict_volume batch size")
    p.add_argument("--repeats", type=int, default=2, help="timed inference repetitions")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    args = p.parse_args(argv)
    for name in ("steps", "warmup", "slices", "slice_size", "infer_batch", "repeats"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            p.error(f"--{name.replace('_', '-')}: must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = torch.bfloat16 if args.bf16 else None
    configs = configurations(args.params)
    unknown = sorted(set(args.configs) - set(configs))
    if unknown:
        p.error(f"--configs: unknown {unknown}; choose from {sorted(configs)}")

    settings = {
        "steps": args.steps,
        "warmup": args.warmup,
        "inference_volume": [args.slices, args.slice_size, args.slice_size],
        "inference_batch": args.infer_batch,
        "repeats": args.repeats,
        "optimizer": "adam",
        "loss": "0.5 CE + 0.5 soft Dice",
    }
    rows = []
    for name in args.configs:
        cfg, batch = configs[name]
        r = cfg.resolved()
        row: dict[str, Any] = {
            "config": name,
            "compile": bool(args.compile),
            "dtype": "bfloat16" if amp is not None else "float32",
            "width_mult": cfg.width_mult,
            "img_size": list(cfg.img_size),
            "batch_size": batch,
            "parameters": sum(p.numel() for p in MTUNet(cfg).parameters()),
            "cnn_channels": list(r.cnn_channels),
            "encoder_dims": list(r.encoder_dims),
        }
        row.update(time_training(cfg, batch, device, amp, args.steps, args.warmup, args.compile))
        row.update(
            time_inference(
                cfg,
                device,
                amp,
                args.slices,
                args.slice_size,
                args.infer_batch,
                args.repeats,
                args.compile,
            )
        )
        row["settings"] = settings
        rows.append(row)
        print(f"done: {name}", flush=True)

    print(format_table(rows))
    out = args.out or RESULTS / f"train_speed_{device.type}.json"
    result = {
        "benchmark": "train_speed",
        "machine": machine_info(device),
        "rows": merge_rows(out, "rows", rows, _key),
    }
    write_json(out, result)
    print(f"wrote {out}")
    return result


def _key(row: dict[str, Any]) -> tuple[str, str, bool]:
    return (row["config"], row["dtype"], bool(row.get("compile", False)))


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of the measured rows (first: the compile/warm-up step's seconds)."""
    head = (
        f"{'config':<8} {'dtype':<9} {'compile':<7} {'params':>11} {'img':>8} {'batch':>5} "
        f"{'train img/s':>12} {'s/step':>8} {'first (s)':>9} {'infer slices/s':>15} "
        f"{'first (s)':>9}"
    )
    lines = [head]
    for row in rows:
        lines.append(
            f"{row['config']:<8} {row['dtype']:<9} {row.get('compile', False)!s:<7} "
            f"{row['parameters']:>11,} {'x'.join(map(str, row['img_size'])):>8} "
            f"{row['batch_size']:>5} {row['train_images_per_s']:>12.2f} "
            f"{row['train_step_seconds']:>8.3f} {row.get('train_first_step_seconds', 0):>9.1f} "
            f"{row['inference_slices_per_s']:>15.2f} {row.get('inference_warmup_seconds', 0):>9.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
