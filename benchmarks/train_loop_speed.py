"""Throughput of the whole training loop with each CPU lever, beside the previous code path.

Every variant runs ``mtunet.training.train`` (data loading, augmentation, forward, loss,
backward, optimizer step, per-epoch checkpoint) on the same preprocessed Synapse phantoms at
the quick configuration (``params.yaml``'s ``model`` and ``train`` sections, at
``--img-size``, 96 x 96 unless told: the size the 1.5x target was set at), each in a fresh
process (``cpu_kernels`` must be chosen before a process computes anything), the variants
alternated over ``--repeats`` rounds. Images/s counts the epochs after the first (the first
pays start-up and, with ``compile``, compilation, reported separately as ``first_epoch_s``).

Variants (``train`` overrides; ``previous`` is the code path before these levers existed):

* ``previous``: float32, contiguous memory, per-parameter optimizer loop, native kernels,
  external attention differentiated by autograd (``external_attention_reference``);
* ``channels_last``, ``fused_optimizer``, ``portable`` (``cpu_kernels: portable``),
  ``workers`` (``num_workers: 1``: augmentation in a worker process), ``compile``, ``bf16``
  (CPU autocast), ``fused_ea`` (the hand-written external-attention backward): one lever
  each; ``fused_ea_portable``: that and portable kernels (the weights-across-CPUs check);
* ``default``: the levers ``params.yaml`` turns on, and the fused external attention;
* thread settings on top of ``default``, as OpenMP reads them from the environment:
  ``one_thread`` (``OMP_NUM_THREADS=1``), ``omp_active`` (``OMP_WAIT_POLICY=ACTIVE``: idle
  threads spin instead of sleeping between parallel regions), ``omp_bind``
  (``OMP_PROC_BIND=close``, ``OMP_PLACES=cores``: each thread pinned to a core).

Prints a table and writes ``benchmarks/results/train_loop_speed_cpu.json`` (sorted keys)
with the machine it ran on. Usage::

    python benchmarks/train_loop_speed.py --epochs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: The train overrides of each variant, on top of params.yaml's train section.
PREVIOUS = {
    "channels_last": False,
    "fused_optimizer": False,
    "cpu_kernels": "native",
    "compile": False,
    "bf16": False,
    "num_workers": 0,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "previous": PREVIOUS,
    "channels_last": {**PREVIOUS, "channels_last": True},
    "fused_optimizer": {**PREVIOUS, "fused_optimizer": True},
    "portable": {**PREVIOUS, "cpu_kernels": "portable"},
    "workers": {**PREVIOUS, "num_workers": 1},
    "compile": {**PREVIOUS, "compile": True},
    "bf16": {**PREVIOUS, "bf16": True},
    "fused_ea": PREVIOUS,
    "fused_ea_portable": {**PREVIOUS, "cpu_kernels": "portable"},
    "default": {},
    "one_thread": {},
    "omp_active": {},
    "omp_bind": {},
}
#: Thread settings, as the environment of a variant's process (on top of ``default``).
THREAD_ENV: dict[str, dict[str, str]] = {
    "one_thread": {"OMP_NUM_THREADS": "1"},
    "omp_active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "omp_bind": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},
}
#: The variants that run the network's code path as it is (the others: the plain EA).
FUSED_EA = {"fused_ea", "fused_ea_portable", "default", *THREAD_ENV}


def weights_digest(checkpoint: Path) -> str:
    """SHA-256 over a checkpoint's weights (names and raw bytes, in name order)."""
    import hashlib

    from mtunet.checkpoint import load_checkpoint

    h = hashlib.sha256()
    for name, tensor in sorted(load_checkpoint(checkpoint)["model"].items()):
        h.update(name.encode())
        h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()


def _child(variant: str, data: Path, epochs: int, img_size: int) -> None:
    """Train one variant in this (fresh) process and print its timings as JSON."""
    import mtunet.model.attention as attention
    from mtunet.config import load_params
    from mtunet.model.external_attention import external_attention_reference
    from mtunet.model.registry import ModelSpec
    from mtunet.training import TrainConfig, train

    if variant not in FUSED_EA:
        attention.external_attention = external_attention_reference  # type: ignore[assignment]
    params = load_params(ROOT / "params.yaml")
    t = dict(params["train"])
    t.update(VARIANTS[variant], epochs=epochs, progress=False, device="cpu")
    model = dict(params["model"], img_size=img_size)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        res = train(TrainConfig.from_dict(t), ModelSpec.from_params(model).config, data, out, None)
        digest = weights_digest(Path(out) / "last.pt")
    seconds = [h["train_seconds"] for h in res["history"]]
    images = res["data"]["n_train_slices"]
    steady = seconds[1:] or seconds
    print(
        json.dumps(
            {
                "images_per_s": images * len(steady) / sum(steady),
                "first_epoch_s": seconds[0],
                "total_s": time.perf_counter() - t0,
                "final_loss": res["history"][-1]["loss"],
                "aten": res["machine"]["aten_capability"],
                "weights_sha256": digest,
            }
        )
    )


def _dataset(root: Path) -> Path:
    """The quick default's Synapse phantoms, preprocessed (reused when already there)."""
    from mtunet.config import load_params
    from mtunet.data import preprocess
    from mtunet.data.synthetic import phantom_config, write_phantoms

    processed = ROOT / "data" / "processed" / "synapse" / "dataset.json"
    if processed.is_file():
        return processed.parent
    ds = load_params(ROOT / "params.yaml")["datasets"]["synapse"]
    write_phantoms("synapse", phantom_config("synapse", ds["phantoms"]), root / "raw")
    preprocess("synapse", ds["preprocess"], root / "raw", root / "processed")
    return root / "processed"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (the first untimed)")
    p.add_argument("--repeats", type=int, default=2, help="rounds over the variants")
    p.add_argument("--img-size", type=int, default=96, help="the network's input side")
    p.add_argument("--out", type=Path, default=RESULTS / "train_loop_speed_cpu.json")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.data, args.epochs, args.img_size)
        return {}
    if args.epochs < 2 or args.repeats < 1:
        p.error("--epochs must be >= 2 and --repeats >= 1")
    import torch
    from machine import machine_info

    from mtunet.fileio import write_json

    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        data = _dataset(Path(tmp))
        for r in range(args.repeats):
            for v in args.variants:
                cmd = [sys.executable, __file__, "--child", v, "--data", str(data)]
                cmd += ["--epochs", str(args.epochs), "--img-size", str(args.img_size)]
                env = {**os.environ, **THREAD_ENV.get(v, {})}
                done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                runs[v].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1}: {v} {runs[v][-1]['images_per_s']:.2f} img/s", flush=True)
    base = (
        statistics.median(x["images_per_s"] for x in runs["previous"])
        if "previous" in runs
        else None
    )
    rows = []
    for v, xs in runs.items():
        ips = statistics.median(x["images_per_s"] for x in xs)
        rows.append(
            {
                "variant": v,
                "train": VARIANTS[v],
                "env": THREAD_ENV.get(v, {}),
                "images_per_s": ips,
                "speedup_vs_previous": ips / base if base else None,
                "first_epoch_s": statistics.median(x["first_epoch_s"] for x in xs),
                "final_loss": [x["final_loss"] for x in xs],
                "aten": xs[0]["aten"],
                "runs": xs,
            }
        )
    print(f"{'variant':<16} {'img/s':>8} {'vs previous':>12} {'1st epoch s':>12} {'aten':>7}")
    for row in rows:
        speed = row["speedup_vs_previous"]
        print(
            f"{row['variant']:<16} {row['images_per_s']:>8.2f} "
            f"{(f'{speed:.2f}x' if speed else '-'):>12} {row['first_epoch_s']:>12.1f} "
            f"{row['aten']:>7}"
        )
    result = {
        "machine": machine_info(torch.device("cpu")),
        "settings": {
            "epochs": args.epochs,
            "repeats": args.repeats,
            "dataset": "synapse phantoms",
            "img_size": args.img_size,
        },
        "rows": rows,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
