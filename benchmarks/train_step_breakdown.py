"""Where the CPU training step spends its time: work and seconds per kind of operation.

One training step of the quick network (``params.yaml``'s ``model`` at ``--img-size``, 96 x 96
unless told: the size the 1.5x target was set at; its ``train`` levers applied as training
applies them, kernels pinned before any arithmetic) on one random batch, taken apart two
ways:

* work: torch's FLOP counter over one step (forward, loss, backward), per operator;
* time: ``torch.profiler`` self CPU time over ``--steps`` steps after ``--warmup`` untimed
  ones, per operator, both grouped into families (:data:`FAMILIES`).

Each family gets milliseconds per step, its share of the profiled step, GFLOP per step and the
rate it ran at. The step is also timed without the profiler (median over the same number of
steps) to show what profiling adds. The table answers what a faster float32 step could come
from: the families that do the arithmetic (convolutions, matrix products) against the rest.

Prints a table and writes ``benchmarks/results/train_step_breakdown_cpu_<kernels>.json``
(sorted keys; ``<kernels>``: ``portable`` or ``native``) with the machine it ran on. Usage::

    python benchmarks/train_step_breakdown.py --steps 10 --warmup 3
    python benchmarks/train_step_breakdown.py --cpu-kernels native
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: Operator families, in table order; an ``aten::`` operator belongs to the first family one
#: of whose names it contains. Everything else is "other" (elementwise, reductions,
#: activations, pooling, resampling, the optimizer).
FAMILIES: dict[str, tuple[str, ...]] = {
    "convolution": ("convolution",),
    "matrix product": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "softmax": ("softmax",),
    "attention kernel": ("scaled_dot_product",),
    "normalisation": ("batch_norm", "layer_norm"),
    "copy and layout": ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous"),
}
OTHER = "other"


def op_family(name: str) -> str:
    """The family of a profiled operator name.

    Autograd nodes and Python-level wrappers (``AddmmBackward0``, ``Optimizer.step#Adam.step``,
    custom functions) spend most of their time in the ATen operators they call; their own
    (self) time is bookkeeping and counts under "other".
    """
    if name.startswith("aten::"):
        for family, needles in FAMILIES.items():
            if any(n in name for n in needles):
                return family
    return OTHER


def flop_family(op: str) -> str:
    """The family of an operator as the FLOP counter names it (``aten.mm``, ...)."""
    return op_family("aten::" + op.removeprefix("aten."))


def group(entries: Iterable[tuple[str, float]], family: Callable[[str], str]) -> dict[str, float]:
    """Sum ``(name, value)`` pairs by family, every family of the table present (0 if none)."""
    out = dict.fromkeys([*FAMILIES, OTHER], 0.0)
    for name, value in entries:
        out[family(name)] += value
    return out


def breakdown(step: Callable[[], Any], steps: int, warmup: int) -> dict[str, Any]:
    """Time and work of ``step`` by family.

    Args:
        step: One training step (forward, loss, backward, optimizer update).
        steps: Profiled steps (and, separately, timed steps without the profiler).
        warmup: Untimed steps before both.

    Returns:
        ``{"families": {family: {"ms_per_step", "share", "gflop_per_step",
        "gflop_per_s"}}, "profiled_ms_per_step", "unprofiled_ms_per_step",
        "gflop_per_step"}``; ``gflop_per_s`` is None for a family without counted FLOPs.
    """
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = group(
        ((str(op), float(n)) for op, n in counter.get_flop_counts()["Global"].items()),
        flop_family,
    )
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    self_us = group(((e.key, float(e.self_cpu_time_total)) for e in prof.key_averages()), op_family)
    total_ms = sum(self_us.values()) / 1e3 / steps
    families = {}
    for fam, us in self_us.items():
        ms = us / 1e3 / steps
        gflop = flops[fam] / 1e9
        families[fam] = {
            "ms_per_step": ms,
            "share": ms / total_ms if total_ms > 0 else 0.0,
            "gflop_per_step": gflop,
            "gflop_per_s": gflop / (ms / 1e3) if gflop > 0 and ms > 0 else None,
        }
    return {
        "families": families,
        "profiled_ms_per_step": total_ms,
        "unprofiled_ms_per_step": statistics.median(times) * 1e3,
        "gflop_per_step": sum(flops.values()) / 1e9,
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`breakdown`'s result."""
    lines = [f"{'family':<18} {'ms/step':>8} {'share':>6} {'GFLOP/step':>11} {'GFLOP/s':>8}"]
    for fam, row in result["families"].items():
        rate = row["gflop_per_s"]
        lines.append(
            f"{fam:<18} {row['ms_per_step']:>8.1f} {row['share']:>6.1%} "
            f"{row['gflop_per_step']:>11.2f} {('-' if rate is None else f'{rate:.0f}'):>8}"
        )
    lines.append(
        f"{'profiled step':<18} {result['profiled_ms_per_step']:>8.1f} {'':>6} "
        f"{result['gflop_per_step']:>11.2f}"
    )
    lines.append(f"{'unprofiled step':<18} {result['unprofiled_ms_per_step']:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--img-size", type=int, default=96, help="input side (multiple of 8)")
    p.add_argument("--steps", type=int, default=10, help="profiled and timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument(
        "--cpu-kernels", choices=("native", "portable"), default=None, help="default: params"
    )
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--out", type=Path, default=None, help="default: results/, by kernels")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps: must be positive; --warmup: must not be negative")
    if args.img_size < 8 or args.img_size % 8:
        p.error(f"--img-size: must be a positive multiple of 8, got {args.img_size}")

    from mtunet.config import load_params, train_section
    from mtunet.numerics import pin_cpu_kernels

    params = load_params(args.params)
    train = train_section(params, "synapse")
    if args.cpu_kernels is not None:
        train["cpu_kernels"] = args.cpu_kernels
    # Before any arithmetic, as the training stage does.
    kernels = pin_cpu_kernels(train.get("cpu_kernels", "native"))

    import torch
    from machine import machine_info
    from train_speed import configurations

    from mtunet.fileio import write_json
    from mtunet.losses import CEDiceLoss
    from mtunet.model import MTUNet
    from mtunet.training import TrainConfig
    from mtunet.training.build import make_optimizer
    from mtunet.training.epoch import optimizer_step

    cfg = TrainConfig.from_dict(train).resolved()
    if cfg.bf16:
        p.error("--params: this breakdown is of the float32 step; set train.bf16 to false")
    model_cfg, batch = configurations(args.params)["default"]
    model_cfg = dataclasses.replace(model_cfg, img_size=(args.img_size, args.img_size))
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = MTUNet(model_cfg).to(memory_format=fmt).train()
    optimizer = make_optimizer(cfg, model)
    loss_fn = CEDiceLoss(model_cfg.num_classes)
    x = torch.rand(batch, model_cfg.in_channels, args.img_size, args.img_size)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, model_cfg.num_classes, (batch, args.img_size, args.img_size))
    confusion = torch.zeros(model_cfg.num_classes**2, dtype=torch.int64)

    def step() -> None:
        optimizer_step(
            model, loss_fn, optimizer, x, y, ce_scale=1.0, amp_dtype=None, confusion=confusion
        )

    result: dict[str, Any] = breakdown(step, args.steps, args.warmup)
    print(format_table(result))
    result.update(
        {
            "benchmark": "train_step_breakdown",
            "machine": machine_info("cpu"),
            "aten": kernels["aten"],
            "cpu_kernels": kernels["mode"],
            "settings": {
                "batch_size": batch,
                "img_size": args.img_size,
                "width_mult": model_cfg.width_mult,
                "steps": args.steps,
                "warmup": args.warmup,
                "train": {k: getattr(cfg, k) for k in ("channels_last", "fused_optimizer")},
            },
        }
    )
    out = args.out or RESULTS / f"train_step_breakdown_cpu_{kernels['mode']}.json"
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
