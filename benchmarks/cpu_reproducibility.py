"""Do two CPUs train the same weights? Each kernel set on simulated machines, and its cost.

A training run amplifies last-bit differences, so "reproducible" means the same bits. Three
machines are compared on this one, each simulated from outside the way its libraries would
choose on their own:

* ``this CPU``: nothing changed;
* ``AVX2-only CPU``: ATen, oneDNN and MKL capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2``,
  ``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``), as on a CPU of the same
  vendor without AVX-512;
* ``other vendor``: MKL made to take the other vendor's dispatch (an Intel CPU on an AMD
  machine, and the reverse) by a small preloaded library that answers MKL's own vendor
  check (``mkl_serv_intel_cpu_true``), compiled with the system's C compiler. ATen and
  oneDNN pick their code from the instruction set, not the vendor, so MKL is the one library
  whose choice this changes.

Three parts, each child in a fresh process (the kernels are fixed at a process's first
computation):

1. ``trace``: one training step of the quick network (``params.yaml``'s ``model``, batch
   12) under ``TorchDispatchMode``, every ATen operator's inputs and outputs hashed, on this
   CPU and on the other vendor, per kernel set: the first operator that computes a
   different result from identical inputs; and once more on the portable kernels with the
   window attention through PyTorch's math path instead of the CPU flash-attention kernel
   (what differs next when that kernel is routed around).
2. ``train``: ``--epochs`` epochs of the quick training on the Synapse phantoms per kernel
   set and machine: the SHA-256 of the weights and the last loss.
3. ``cost``: the training step (``mtunet.training.epoch.optimizer_step``, quick network at
   ``params.yaml``'s size, batch 12, the quick default's levers) per kernel set, the sets
   alternated over ``--rounds`` rounds, median images/s per set beside ``portable``.

Prints tables and writes ``benchmarks/results/cpu_reproducibility.json`` (sorted keys) with
the machine it ran on. Usage::

    python benchmarks/cpu_reproducibility.py --epochs 2 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
KERNELS = ("native", "portable", "compatible")
#: What an AVX2-only x86-64 CPU's libraries choose on their own.
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
#: The environment a child must not inherit (each run sets its own).
OWN_ENV = (*AVX2_MACHINE, "MKL_CBWR", "LD_PRELOAD")
# Operators whose output is uninitialised memory: never compared.
UNINITIALISED = ("aten.empty", "aten.new_empty")

SHIM = """
/* MKL's vendor check, answered as another vendor's CPU would (a measurement aid only). */
int mkl_serv_intel_cpu_true(void) { return INTEL; }
int mkl_serv_intel_cpu(void) { return INTEL; }
"""


def vendor_shim(folder: Path, intel: bool) -> Path:
    """Compile the preload library that makes MKL see an Intel (or a non-Intel) CPU."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("cpu_reproducibility: a C compiler (cc or gcc) is needed for the shim")
    src, lib = folder / "vendor_shim.c", folder / "vendor_shim.so"
    src.write_text(SHIM.replace("INTEL", "1" if intel else "0"), encoding="utf-8")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src)], check=True)
    return lib


def machines(shim: Path, this_vendor: str) -> dict[str, dict[str, str]]:
    """Name -> environment of each simulated machine."""
    other = "Intel CPU" if this_vendor != "GenuineIntel" else "non-Intel CPU"
    return {
        "this CPU": {},
        "AVX2-only CPU": dict(AVX2_MACHINE),
        f"{other} (MKL's vendor dispatch)": {"LD_PRELOAD": str(shim)},
    }


def _digest(t: Any) -> str | None:
    import torch

    if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
        return None
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:16]


def _flat(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple)):
        return [x for v in values for x in _flat(v)]
    return [values]


def _trace_child(kernels: str, attention: str = "flash") -> dict[str, Any]:
    """One training step of the quick network, every operator's inputs and outputs hashed.

    ``attention="math"`` runs the window attention through PyTorch's math path (its own
    matrix products and softmax) instead of the CPU flash-attention kernel: what differs next
    when that kernel is routed around.
    """
    from mtunet.numerics import pin_cpu_kernels

    info = pin_cpu_kernels(kernels)  # type: ignore[arg-type]
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from train_speed import configurations

    from mtunet.losses import CEDiceLoss
    from mtunet.model import MTUNet
    from mtunet.numerics import mkl_branch

    cfg, batch = configurations(ROOT / "params.yaml")["default"]
    torch.manual_seed(0)
    model = MTUNet(cfg).to(memory_format=torch.channels_last).train()
    h, w = cfg.img_size
    x = torch.rand(batch, cfg.in_channels, h, w).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg.num_classes, (batch, h, w))
    loss_fn = CEDiceLoss(cfg.num_classes)
    ops: list[list[Any]] = []

    class Trace(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            name = str(func)
            if not name.startswith(UNINITIALISED):
                inputs = [_digest(a) for a in _flat(list(args) + list((kwargs or {}).values()))]
                shapes = [list(a.shape) for a in _flat(list(args)) if isinstance(a, torch.Tensor)]
                ops.append([name, shapes, inputs, [_digest(o) for o in _flat(out)]])
            return out

    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    math = sdpa_kernel([SDPBackend.MATH]) if attention == "math" else contextlib.nullcontext()
    with math, Trace():
        loss = loss_fn(model(x), y)
        loss.backward()
    return {"kernels": info["mode"], "mkl_branch": mkl_branch(), "ops": ops}


def first_difference(a: list[list[Any]], b: list[list[Any]]) -> dict[str, Any]:
    """The first operator whose outputs differ although its inputs are identical."""
    differing = 0
    first: dict[str, Any] | None = None
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x[3] != y[3]:
            differing += 1
            if first is None and x[2] == y[2]:
                first = {"index": i, "op": x[0], "input_shapes": x[1]}
    return {"ops": len(a), "ops_differing": differing, "first": first}


def _train_child(kernels: str, data: Path, epochs: int) -> dict[str, Any]:
    """The quick training for ``epochs`` epochs with ``kernels``; weights digest and loss."""
    from mtunet.numerics import pin_cpu_kernels

    pin_cpu_kernels(kernels)  # type: ignore[arg-type]
    from train_loop_speed import weights_digest

    from mtunet.config import load_params
    from mtunet.model.registry import ModelSpec
    from mtunet.numerics import mkl_branch
    from mtunet.training import TrainConfig, train

    params = load_params(ROOT / "params.yaml")
    t = dict(params["train"], cpu_kernels=kernels, epochs=epochs, progress=False, device="cpu")
    with tempfile.TemporaryDirectory() as out:
        res = train(
            TrainConfig.from_dict(t), ModelSpec.from_params(params["model"]).config, data, out
        )
        digest = weights_digest(Path(out) / "last.pt")
    return {
        "weights_sha256": digest,
        "final_loss": res["history"][-1]["loss"],
        "mkl_branch": mkl_branch(),
    }


def _cost_child(kernels: str, steps: int, warmup: int) -> dict[str, Any]:
    """Images/s of the quick default's training step with ``kernels``."""
    from mtunet.numerics import pin_cpu_kernels

    pin_cpu_kernels(kernels)  # type: ignore[arg-type]
    import torch
    from train_speed import configurations, time_training

    from mtunet.config import load_params, train_section
    from mtunet.training import TrainConfig
    from mtunet.training.build import make_optimizer

    cfg = TrainConfig.from_dict(
        train_section(load_params(ROOT / "params.yaml"), "synapse")
    ).resolved()
    model_cfg, batch = configurations(ROOT / "params.yaml")["default"]
    timing = time_training(
        dataclasses.replace(model_cfg),
        batch,
        torch.device("cpu"),
        None,
        steps,
        warmup,
        memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format,
        make_optimizer=lambda model: make_optimizer(cfg, model),
    )
    return {"train_images_per_s": timing["train_images_per_s"]}


def _spawn(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if k not in OWN_ENV}
    done = subprocess.run(
        [sys.executable, __file__, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**clean, **env},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=2, help="epochs of each training run")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the step timing")
    p.add_argument("--steps", type=int, default=20, help="timed steps per timing run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--out", type=Path, default=RESULTS / "cpu_reproducibility.json")
    p.add_argument(
        "--parts", nargs="+", default=["trace", "train", "cost"], choices=["trace", "train", "cost"]
    )
    p.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        kind, kernels, *rest = args.child
        if kind == "trace":
            out = _trace_child(kernels, *rest)
        elif kind == "train":
            out = _train_child(kernels, Path(rest[0]), args.epochs)
        else:
            out = _cost_child(kernels, args.steps, args.warmup)
        print(json.dumps(out))
        return out
    if min(args.epochs, args.rounds, args.steps) < 1 or args.warmup < 0:
        p.error("--epochs, --rounds and --steps must be positive, --warmup >= 0")
    import torch
    from machine import machine_info

    from mtunet.fileio import read_json, write_json
    from mtunet.numerics import cpu_vendor

    vendor = cpu_vendor()
    # A run of some parts keeps the others' results from the previous run.
    result: dict[str, Any] = read_json(args.out) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        sims = machines(vendor_shim(Path(tmp), intel=vendor != "GenuineIntel"), vendor)
        if "trace" in args.parts:
            result["trace"] = run_trace(sims)
        if "train" in args.parts:
            result["runs"], result["identical"] = run_train(sims, Path(tmp), args.epochs)
            result["settings_train"] = {"epochs": args.epochs}
    if "cost" in args.parts:
        result["cost"] = run_cost(args.rounds, args.steps, args.warmup)
    for r in result.get("runs", []):
        print(f"{r['kernels']:<11} {r['machine']:<36} {r['weights_sha256'][:16]:<18} "
              f"{r['final_loss']:>12.9f}")  # fmt: skip
    cost = result.get("cost", {})
    print(
        f"\n{'kernels':<11} {'same weights':<13} {'step img/s':>10} {'step time vs portable':>22}"
    )
    for k in KERNELS:
        same = result.get("identical", {}).get(k)
        ips = cost.get("images_per_s", {}).get(k, {}).get("median", float("nan"))
        rel = cost.get("step_time_vs_portable", {}).get(k, float("nan"))
        print(f"{k:<11} {same!s:<13} {ips:>10.2f} {rel:>21.2f}x")
    result.update(
        benchmark="cpu_reproducibility", machine=machine_info(torch.device("cpu"), vendor=vendor)
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


def run_trace(sims: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Part 1: per kernel set, the first operator that differs on the other vendor."""
    other = list(sims)[-1]
    traces = []
    # The last row: the window attention through the math path, on the portable kernels.
    for kernels, attention in [*((k, "flash") for k in KERNELS), ("portable", "math")]:
        a = _spawn(["--child", "trace", kernels, attention], sims["this CPU"])
        b = _spawn(["--child", "trace", kernels, attention], sims[other])
        diff = first_difference(a["ops"], b["ops"])
        branches = {"this CPU": a["mkl_branch"], other: b["mkl_branch"]}
        traces.append({"kernels": kernels, "attention": attention, "mkl_branch": branches, **diff})
        print(f"trace {kernels}, {attention} attention: {diff['ops_differing']} of "
              f"{diff['ops']} ops differ; first: {diff['first']}", flush=True)  # fmt: skip
    return traces


def run_train(
    sims: dict[str, dict[str, str]], tmp: Path, epochs: int
) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """Part 2: the weights each kernel set trains on each simulated machine."""
    from train_loop_speed import _dataset

    data = _dataset(tmp)
    runs = []
    for kernels in KERNELS:
        for name, env in sims.items():
            run = _spawn(["--epochs", str(epochs), "--child", "train", kernels, str(data)], env)
            # The shim's temporary path says nothing.
            shown = {k: ("<vendor shim>" if k == "LD_PRELOAD" else v) for k, v in env.items()}
            runs.append({"kernels": kernels, "machine": name, "env": shown, **run})
            print(f"train {kernels} on {name}: {run['weights_sha256'][:16]}", flush=True)
    identical = {
        k: len({r["weights_sha256"] for r in runs if r["kernels"] == k}) == 1 for k in KERNELS
    }
    return runs, identical


def run_cost(rounds: int, steps: int, warmup: int) -> dict[str, Any]:
    """Part 3: the training step's images/s per kernel set, alternated over rounds."""
    ips: dict[str, list[float]] = {k: [] for k in KERNELS}
    for r in range(rounds):
        for kernels in KERNELS:
            timing = ["--steps", str(steps), "--warmup", str(warmup)]
            ips[kernels].append(
                _spawn([*timing, "--child", "cost", kernels], {})["train_images_per_s"]
            )
            print(f"round {r + 1}: {kernels} {ips[kernels][-1]:.2f} img/s", flush=True)
    # Each round's ratio to portable in the same round, then the median: the machine's
    # speed drifts between rounds more than the kernels differ.
    ratio = {
        k: statistics.median(p / x for p, x in zip(ips["portable"], v, strict=True))
        for k, v in ips.items()
    }
    return {
        "settings": {"rounds": rounds, "steps": steps, "warmup": warmup},
        "images_per_s": {k: {"median": statistics.median(v), "rounds": v} for k, v in ips.items()},
        "step_time_vs_portable": ratio,
    }


if __name__ == "__main__":
    main()
