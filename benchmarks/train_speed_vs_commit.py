"""Training-step throughput of this checkout beside an earlier commit's code, in one run.

The 1.5x target for the CPU training step was set against the code as it stood at commit
``55a7fd2`` (17.4 img/s then, from that commit's ``benchmarks/train_speed.py``: width 0.25,
96 x 96, batch 12). This script extracts that commit (``git archive``) and times, each in a
fresh process, the variants alternated over ``--repeats`` rounds:

* ``baseline``: the commit's own ``benchmarks/train_speed.py`` with the commit's package
  first on ``PYTHONPATH`` (its step: forward, loss with its host reads of the labels,
  backward, per-parameter Adam; contiguous memory, native kernels);
* ``current_plain``: this checkout's :func:`mtunet.training.epoch.optimizer_step` with the
  levers off (contiguous memory, per-parameter Adam, native kernels), so the code changes
  show apart from the levers;
* ``current``: the same step as the quick default trains it: ``params.yaml``'s ``train``
  levers (``channels_last``, ``fused_optimizer``, ``cpu_kernels``) applied the way
  training applies them;
* ``current_native``: ``current`` on the native kernels (what the portable ones cost);
* ``current_bf16``: ``current`` with ``bf16: true`` (CPU autocast) on the native kernels,
  the opt-in lever that gives up the same bits on other CPUs; ``current_bf16_portable``:
  the same on the portable kernels.

All variants time the same thing (this checkout's through ``train_speed.time_training``):
median seconds per step over ``--steps`` steps after
``--warmup`` untimed ones, on one random batch (``torch.rand`` images, ``randint`` labels,
seed 0) at the network of ``params.yaml``'s ``model`` section with ``img_size`` set to
``--img-size``; data loading is not included. Prints a table and writes
``benchmarks/results/train_speed_vs_commit_cpu.json`` (sorted keys) with the machine it ran
on. Usage::

    python benchmarks/train_speed_vs_commit.py --repeats 3 --steps 20 --warmup 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: The code the 1.5x target was set against (the quick default when the target was filed).
BASELINE_COMMIT = "55a7fd2"
#: The train levers ``current_plain`` turns off.
PLAIN = {"channels_last": False, "fused_optimizer": False, "cpu_kernels": "native"}
#: Each variant of this checkout: its overrides of ``params.yaml``'s ``train`` section.
CURRENT: dict[str, dict[str, Any]] = {
    "current_plain": PLAIN,
    "current": {},
    "current_native": {"cpu_kernels": "native"},
    "current_bf16": {"bf16": True, "cpu_kernels": "native"},
    "current_bf16_portable": {"bf16": True, "cpu_kernels": "portable"},
}
VARIANTS = ("baseline", *CURRENT)


def _current(variant: str, img_size: int, steps: int, warmup: int) -> dict[str, Any]:
    """Time this checkout's training step in this (fresh) process."""
    from mtunet.config import load_params, train_section
    from mtunet.numerics import pin_cpu_kernels

    params = load_params(ROOT / "params.yaml")
    train = dict(train_section(params, "synapse"), **CURRENT[variant])
    # Before any arithmetic, as the training stage does.
    kernels = pin_cpu_kernels(train.get("cpu_kernels", "native"))

    import torch
    from train_speed import configurations, time_training

    from mtunet.training import TrainConfig
    from mtunet.training.build import make_optimizer

    cfg = TrainConfig.from_dict(train).resolved()
    model_cfg, batch = configurations(ROOT / "params.yaml")["default"]
    model_cfg = dataclasses.replace(model_cfg, img_size=(img_size, img_size))
    timing = time_training(
        model_cfg,
        batch,
        torch.device("cpu"),
        torch.bfloat16 if cfg.bf16 else None,
        steps,
        warmup,
        memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format,
        make_optimizer=lambda model: make_optimizer(cfg, model),
    )
    return {
        "train_step_seconds": timing["train_step_seconds"],
        "train_images_per_s": timing["train_images_per_s"],
        "aten": kernels["aten"],
        "train": {k: getattr(cfg, k) for k in ("bf16", *PLAIN)},
    }


def _baseline(tree: Path, img_size: int, steps: int, warmup: int) -> dict[str, Any]:
    """Run the commit's own train_speed.py on its own package; return its row."""
    params = yaml.safe_load((tree / "params.yaml").read_text(encoding="utf-8"))
    params["model"]["img_size"] = img_size
    with tempfile.TemporaryDirectory() as tmp:
        params_path, out = Path(tmp) / "params.yaml", Path(tmp) / "out.json"
        params_path.write_text(yaml.safe_dump(params), encoding="utf-8")
        cmd = [sys.executable, str(tree / "benchmarks" / "train_speed.py"), "--configs", "default"]
        cmd += ["--steps", str(steps), "--warmup", str(warmup), "--params", str(params_path)]
        # The inference half of that script is not what is compared: one tiny volume.
        cmd += ["--slices", "1", "--slice-size", str(img_size), "--infer-batch", "1"]
        cmd += ["--repeats", "1", "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tree, env=_env(tree))
        row = json.loads(out.read_text(encoding="utf-8"))["rows"][0]
    return {
        "train_step_seconds": row["train_step_seconds"],
        "train_images_per_s": row["train_images_per_s"],
        "aten": None,
        "train": {"bf16": False, **PLAIN},
    }


def _env(tree: Path) -> dict[str, str]:
    """This environment with ``tree`` first on the import path (before the installed copy)."""
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(tree) + (os.pathsep + old if old else "")}


def _extract(commit: str, dest: Path) -> str:
    """Write ``commit``'s tree into ``dest`` and check its package is the one imported."""
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise SystemExit(
            f"--commit {commit}: not a commit of {ROOT}'s history "
            "(a shallow clone? `git fetch --unshallow` brings the history)"
        )
    sha = found.stdout.strip()
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    where = subprocess.run(
        [sys.executable, "-c", "import mtunet; print(mtunet.__file__)"],
        cwd=dest,
        env=_env(dest),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(dest.resolve()):
        raise RuntimeError(f"--commit: the extracted tree's mtunet is shadowed by {where}")
    return sha


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--commit", default=BASELINE_COMMIT, help="the baseline's git commit")
    p.add_argument("--img-size", type=int, default=96, help="the network's input side")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="rounds over the variants")
    p.add_argument("--out", type=Path, default=RESULTS / "train_speed_vs_commit_cpu.json")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--child", choices=list(CURRENT), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_current(args.child, args.img_size, args.steps, args.warmup)))
        return {}
    if min(args.steps, args.repeats, args.img_size) < 1 or args.warmup < 0:
        p.error("--steps, --repeats and --img-size must be positive, --warmup >= 0")
    import torch
    from machine import machine_info

    from mtunet.fileio import write_json

    if "baseline" not in args.variants:
        p.error("--variants: must include baseline, the reference of every ratio")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        sha = _extract(args.commit, tree)
        for r in range(args.repeats):
            for v in args.variants:
                if v == "baseline":
                    run = _baseline(tree, args.img_size, args.steps, args.warmup)
                else:
                    cmd = [sys.executable, __file__, "--child", v, "--img-size", str(args.img_size)]
                    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
                    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    run = json.loads(done.stdout.strip().splitlines()[-1])
                runs[v].append(run)
                print(f"round {r + 1}: {v} {run['train_images_per_s']:.2f} img/s", flush=True)
    base = statistics.median(x["train_images_per_s"] for x in runs["baseline"])
    rows = []
    for v, xs in runs.items():
        ips = statistics.median(x["train_images_per_s"] for x in xs)
        rows.append(
            {
                "variant": v,
                "train_images_per_s": ips,
                "speedup_vs_baseline": ips / base,
                "per_round_images_per_s": [x["train_images_per_s"] for x in xs],
                "aten": xs[0]["aten"],
                "train": xs[0]["train"],
            }
        )
    print(f"{'variant':<22} {'img/s':>8} {'vs baseline':>12}  per round")
    for row in rows:
        rounds = " ".join(f"{x:.2f}" for x in row["per_round_images_per_s"])
        print(
            f"{row['variant']:<22} {row['train_images_per_s']:>8.2f} "
            f"{row['speedup_vs_baseline']:>11.2f}x  {rounds}"
        )
    result = {
        "benchmark": "train_speed_vs_commit",
        "machine": machine_info(torch.device("cpu")),
        "settings": {
            "baseline_commit": sha,
            "img_size": args.img_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        "rows": rows,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
