"""Training and inference speed of MT-UNet for the study's default and the paper's config.

* Training: images/s of the training step ``mtunet.training`` runs (forward, 0.5 CE + 0.5 soft
  Dice, backward, optimizer step; Adam as the ``mtunet`` preset), on random batches of the
  training input size, after warm-up steps. Data loading is not included (it runs in
  DataLoader workers in parallel with the step).
* Inference: slices/s of ``mtunet.inference.predict_volume`` on a random volume of
  ``--slices`` slices of ``--slice-size``\\ :sup:`2` pixels (cubic resize to the input size,
  batched forward, argmax, nearest resize back), as evaluation runs it.

Configurations: ``default`` is ``params.yaml``'s ``model`` section (when the file exists;
otherwise width_mult 0.25 at 224 x 224) with the batch size of its ``train`` section,
``paper`` is the full-width network at 224 x 224 with batch 12 (MT-UNet's recipe).

Prints a table and writes ``benchmarks/results/train_speed_<device>.json`` (sorted keys) with
the machine it ran on. Usage::

    python benchmarks/train_speed.py --device cpu --steps 2 --warmup 1
    python benchmarks/train_speed.py --device cuda --bf16 --steps 20 --warmup 5
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import machine_info  # benchmarks/ is the script's folder, on sys.path

from mtunet.config import load_params
from mtunet.fileio import write_json
from mtunet.inference import predict_volume, resolve_device
from mtunet.losses import CEDiceLoss
from mtunet.model import MTUNet, MTUNetConfig
from mtunet.training import TrainConfig

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
        model_cfg = MTUNetConfig.from_dict(params.get("model"), "model")
        batch = int(TrainConfig.from_dict(params.get("train"), "train").resolved().batch_size)
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
) -> dict[str, float]:
    """Median seconds per training step and images/s."""
    torch.manual_seed(0)
    model = MTUNet(cfg).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    loss_fn = CEDiceLoss(cfg.num_classes)
    h, w = cfg.img_size
    x = torch.rand(batch, cfg.in_channels, h, w, device=device)
    y = torch.randint(0, cfg.num_classes, (batch, h, w), device=device)
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t = time.perf_counter()
        ctx = (
            torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
        )
        with ctx:
            logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return {"train_step_seconds": sec, "train_images_per_s": batch / sec}


def time_inference(
    cfg: MTUNetConfig,
    device: torch.device,
    amp: torch.dtype | None,
    slices: int,
    slice_size: int,
    batch: int,
    repeats: int,
) -> dict[str, float]:
    """Median seconds per volume of ``predict_volume`` and slices/s."""
    torch.manual_seed(0)
    model = MTUNet(cfg).to(device).eval()
    volume = np.random.default_rng(0).random((slices, slice_size, slice_size), dtype=np.float32)
    predict_volume(model, volume[: min(2, slices)], cfg.img_size, batch, amp_dtype=amp)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        predict_volume(model, volume, cfg.img_size, batch, amp_dtype=amp)
        _sync(device)
        times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return {"inference_volume_seconds": sec, "inference_slices_per_s": slices / sec}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA and CPU)")
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

    rows = []
    for name in args.configs:
        cfg, batch = configs[name]
        r = cfg.resolved()
        row: dict[str, Any] = {
            "config": name,
            "dtype": "bfloat16" if amp is not None else "float32",
            "width_mult": cfg.width_mult,
            "img_size": list(cfg.img_size),
            "batch_size": batch,
            "parameters": sum(p.numel() for p in MTUNet(cfg).parameters()),
            "cnn_channels": list(r.cnn_channels),
            "encoder_dims": list(r.encoder_dims),
        }
        row.update(time_training(cfg, batch, device, amp, args.steps, args.warmup))
        row.update(
            time_inference(
                cfg, device, amp, args.slices, args.slice_size, args.infer_batch, args.repeats
            )
        )
        rows.append(row)
        print(f"done: {name}", flush=True)

    header = f"{'config':<8} {'dtype':<9} {'params':>10} {'img':>8} {'batch':>5} "
    header += f"{'train img/s':>12} {'s/step':>8} {'infer slices/s':>15}"
    print(header)
    for row in rows:
        print(
            f"{row['config']:<8} {row['dtype']:<9} {row['parameters']:>10,} "
            f"{'x'.join(map(str, row['img_size'])):>8} {row['batch_size']:>5} "
            f"{row['train_images_per_s']:>12.2f} {row['train_step_seconds']:>8.2f} "
            f"{row['inference_slices_per_s']:>15.2f}"
        )
    result = {
        "machine": machine_info(device),
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "inference_volume": [args.slices, args.slice_size, args.slice_size],
            "inference_batch": args.infer_batch,
            "repeats": args.repeats,
            "optimizer": "adam",
            "loss": "0.5 CE + 0.5 soft Dice",
        },
        "rows": rows,
    }
    suffix = device.type + ("_bf16" if amp is not None else "")
    out = args.out or RESULTS / f"train_speed_{suffix}.json"
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
