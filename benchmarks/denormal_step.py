"""The training step of a trained network, with and without denormal numbers flushed to zero.

A network late in training computes with many denormal (subnormal) floats, which some CPUs
handle in microcode at many times the normal cost. This times one Adam step of a trained
checkpoint (``model.pt`` or ``last.pt``: its weights and, where held, its optimizer state) on
a random batch at the checkpoint's input size, in a fresh process per setting: ``default``
(denormals kept) and ``flush`` (flushed), each set by ``mtunet.numerics.pin_denormals`` as
training sets it, which checks every thread and returns the mode recorded as ``denormals``,
with freshly initialised weights beside. Kernels are pinned as the checkpoint's run pinned them, threads
as ``--threads``. Prints a table (median ms per step) and writes
``benchmarks/results/denormal_step.json`` (sorted keys) with the machine. Usage::

    python benchmarks/denormal_step.py models/synapse/mtunet/seed1234/last.pt
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "denormal_step.json"
SETTINGS = ("default", "flush")


def child(checkpoint: Path, setting: str, threads: int, steps: int, warmup: int) -> dict:
    """Median seconds per step of the trained and of fresh weights under one setting, and
    how the process's threads computed denormals (``denormals``, as training records it)."""
    import torch

    from mtunet.numerics import pin_cpu_kernels, pin_denormals

    ck = torch.load(checkpoint, weights_only=True, map_location="cpu")
    pin_cpu_kernels(ck["train_config"].get("cpu_kernels", "native"))
    torch.set_num_threads(threads)
    # As training sets it, and checked on every thread: "mixed" would time neither setting.
    denormals = pin_denormals(setting == "flush")
    from mtunet.losses import CEDiceLoss
    from mtunet.model import MTUNetConfig
    from mtunet.model.registry import ModelSpec

    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in ck["model_config"].items()}
    model_cfg = MTUNetConfig(**cfg)
    out: dict[str, float | str] = {"denormals": denormals}
    for weights in ("trained", "fresh"):
        torch.manual_seed(0)
        net = ModelSpec(ck["model_name"], {}, model_cfg).build()
        net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
        if weights == "trained":
            net.load_state_dict(ck["model"])
            if "optimizer" in ck:
                opt.load_state_dict(ck["optimizer"])
        criterion = CEDiceLoss(model_cfg.num_classes)
        size = model_cfg.img_size if isinstance(model_cfg.img_size, int) else model_cfg.img_size[0]
        x = torch.randn(12, model_cfg.in_channels, size, size)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, model_cfg.num_classes, (12, size, size))
        times = []
        for _ in range(warmup + steps):
            t = time.perf_counter()
            loss = criterion(net(x), y, ce_scale=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
        out[weights] = statistics.median(times[warmup:])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="a trained model.pt or last.pt")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        res = child(args.checkpoint, args.child, args.threads, args.steps, args.warmup)
        print(json.dumps(res))
        return res
    from machine import machine_info

    runs: dict[str, Any] = {}
    for setting in SETTINGS:
        cmd = [sys.executable, __file__, str(args.checkpoint), "--child", setting]
        cmd += ["--threads", str(args.threads), "--steps", str(args.steps)]
        cmd += ["--warmup", str(args.warmup)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    result = {
        "benchmark": "denormal_step",
        "checkpoint": str(args.checkpoint),
        "machine": machine_info(),
        "runs": runs,
        "settings": {"threads": args.threads, "steps": args.steps, "warmup": args.warmup},
    }
    print("setting   trained ms/step   fresh ms/step")
    for setting, r in runs.items():
        print(f"{setting:8s}  {r['trained'] * 1000:15.0f}   {r['fresh'] * 1000:13.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
