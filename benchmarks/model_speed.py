"""Speed of MT-UNet: this implementation vs the naive per-position Gaussian loop.

For each variant and batch size: forward images/s (eval, no grad) and training-step
images/s (train mode, forward + cross-entropy + backward + Adam step), FLOPs per image
(``torch.utils.flop_counter.FlopCounterMode``, 2 FLOP per multiply-add) and achieved GFLOP/s.
Prints a table and merges the rows into ``benchmarks/results/model_speed_<device>.json``
(sorted keys; rows keyed by variant, dtype, compile and batch) with the machine it ran on.

Usage (CPU, fewer repetitions for the slow batch of 12)::

    python benchmarks/model_speed.py --device cpu --batch-sizes 1 12 --warmup 1 --repeats 3

``--dtype bfloat16`` runs under ``torch.autocast``; ``--compile`` applies ``torch.compile`` to
this implementation only (the naive variant always runs eagerly, the authors' way).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, merge_rows
from naive_mtunet import build_naive_mtunet

from mtunet.fileio import write_json
from mtunet.model import MTUNet, MTUNetConfig

RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: str) -> AbstractContextManager[Any]:
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def _time_interleaved(
    fns: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int
) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin.

    Interleaving spreads load changes on a shared machine evenly over the variants.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _build(variant: str, cfg: MTUNetConfig, state: dict[str, torch.Tensor]) -> MTUNet:
    model = build_naive_mtunet(cfg) if variant == "naive" else MTUNet(cfg)
    model.load_state_dict(state)  # same weights in both variants
    return model


def count_flops(model: torch.nn.Module, x: torch.Tensor, train: bool, dtype: str) -> int:
    """FLOPs of one forward (eval) or one forward + backward (train) on ``x``."""
    model.train(train)
    with FlopCounterMode(display=False) as counter:
        if train:
            with _autocast(x.device, dtype):
                out = model(x)
            out.float().square().mean().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad(), _autocast(x.device, dtype):
                model(x)
    return int(counter.get_total_flops())


def bench_batch(
    batch: int, args: argparse.Namespace, cfg: MTUNetConfig, state: dict[str, torch.Tensor]
) -> list[dict[str, Any]]:
    """Forward and training-step throughput of every variant at one batch size."""
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(batch, cfg.in_channels, args.size, args.size, generator=gen).to(device)
    y = torch.randint(0, cfg.num_classes, (batch, args.size, args.size), generator=gen).to(device)
    forwards: dict[str, Callable[[], None]] = {}
    steps: dict[str, Callable[[], None]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for variant in args.variants:
        compiled = bool(args.compile and variant == "ours")
        model = _build(variant, cfg, state).to(device)
        runner = torch.compile(model) if compiled else model
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def forward(model: MTUNet = model, runner: Callable = runner) -> None:
            model.eval()
            with torch.no_grad(), _autocast(device, args.dtype):
                runner(x)

        def train_step(
            model: MTUNet = model, runner: Callable = runner, opt: torch.optim.Optimizer = opt
        ) -> None:
            model.train()
            opt.zero_grad(set_to_none=True)
            with _autocast(device, args.dtype):
                loss = F.cross_entropy(runner(x).float(), y)
            loss.backward()
            opt.step()

        forwards[variant], steps[variant] = forward, train_step
        rows[variant] = {
            "variant": variant,
            "batch": batch,
            "dtype": args.dtype,
            "compile": compiled,
            "size": args.size,
            "width_mult": args.width_mult,
            "warmup": args.warmup,
            "repeats": args.repeats,
        }
    x1 = x[:1]
    for mode, fns, backward in (("forward", forwards, False), ("train", steps, True)):
        if mode not in args.modes:
            continue
        secs = _time_interleaved(fns, device, args.warmup, args.repeats)
        prefix = "forward" if mode == "forward" else "train_step"
        for variant, row in rows.items():
            flops = count_flops(_build(variant, cfg, state).to(device), x1, backward, args.dtype)
            row.update(
                {
                    f"{prefix}_s_per_batch": secs[variant],
                    f"{mode}_images_per_s": batch / secs[variant],
                    f"{mode}_gflop_per_image": flops / 1e9,
                    f"{mode}_gflop_per_s": flops / 1e9 * batch / secs[variant],
                }
            )
    return list(rows.values())


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["variant"], row["dtype"], row["compile"], row["batch"], row["size"])


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of the measured rows."""
    head = (
        f"{'variant':8} {'dtype':9} {'compile':7} {'batch':>5} {'fwd img/s':>10} "
        f"{'train img/s':>11} {'GFLOP/img':>9} {'fwd GFLOP/s':>11} {'train GFLOP/s':>13}"
    )
    lines = [head, "-" * len(head)]

    def num(r: dict[str, Any], key: str, width: int, digits: int) -> str:
        return f"{r[key]:>{width}.{digits}f}" if key in r else f"{'-':>{width}}"

    for r in sorted(rows, key=_key):
        lines.append(
            f"{r['variant']:8} {r['dtype']:9} {r['compile']!s:7} {r['batch']:>5} "
            f"{num(r, 'forward_images_per_s', 10, 3)} {num(r, 'train_images_per_s', 11, 3)} "
            f"{num(r, 'forward_gflop_per_image', 9, 2)} {num(r, 'forward_gflop_per_s', 11, 1)} "
            f"{num(r, 'train_gflop_per_s', 13, 1)}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--compile", action="store_true", help="torch.compile this implementation")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 12])
    p.add_argument("--variants", nargs="+", choices=["ours", "naive"], default=["ours", "naive"])
    p.add_argument("--modes", nargs="+", choices=["forward", "train"], default=["forward", "train"])
    p.add_argument("--size", type=int, default=224, help="square input side (multiple of 8)")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--num-classes", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/...)")
    args = p.parse_args(argv)
    if args.warmup < 0 or args.repeats < 1:
        p.error("--warmup must be >= 0 and --repeats >= 1")
    if args.size % 8 or args.size < 8:
        p.error(f"--size must be a positive multiple of 8, got {args.size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    cfg = MTUNetConfig(num_classes=args.num_classes, img_size=args.size, width_mult=args.width_mult)
    state = MTUNet(cfg).state_dict()
    rows = []
    for batch in args.batch_sizes:
        for row in bench_batch(batch, args, cfg, state):
            rows.append(row)
            print(format_table([row]).splitlines()[-1], flush=True)
    print(format_table(rows))

    out = args.out or RESULTS / f"model_speed_{device.type}.json"
    write_json(
        out,
        {
            "benchmark": "model_speed",
            "machine": machine_info(device),
            # A forward-only run keeps the training figures measured before.
            "results": merge_rows(out, "results", rows, _key),
        },
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
