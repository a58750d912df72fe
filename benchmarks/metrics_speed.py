"""Dice + HD95 of one 150 x 512 x 512 case with 8 organs: medpy against ``mtunet.metrics``.

The case is synthetic (seeded): eight ellipsoid "organs" of realistic sizes as ground truth,
a prediction with shifted / rescaled ellipsoids and a few stray false-positive voxels far
from their organ (which stretch the union bounding box over the whole volume). Each
implementation runs once in a fresh child process (medpy takes about 100 s here); the
script reports wall time and peak resident memory above the loaded case, checks that every
value is identical, prints a table and writes ``benchmarks/results/metrics_speed.json``.

Usage: ``python benchmarks/metrics_speed.py [--out benchmarks/results/metrics_speed.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_info  # benchmarks/ is the script's folder, on sys.path

SHAPE = (150, 512, 512)
NUM_CLASSES = 9
SPACING = (3.0, 0.78, 0.78)
SEED = 0
# (name, centre (z, y, x), radii (z, y, x)) in voxels, in the Synapse class order.
ORGANS: list[tuple[str, tuple[int, int, int], tuple[float, float, float]]] = [
    ("aorta", (75, 300, 260), (60.0, 12.0, 12.0)),
    ("gallbladder", (95, 380, 150), (10.0, 18.0, 14.0)),
    ("kidney_l", (85, 320, 340), (22.0, 40.0, 30.0)),
    ("kidney_r", (95, 330, 110), (22.0, 40.0, 30.0)),
    ("liver", (60, 260, 160), (40.0, 120.0, 100.0)),
    ("pancreas", (80, 280, 260), (10.0, 20.0, 70.0)),
    ("spleen", (60, 300, 370), (25.0, 50.0, 35.0)),
    ("stomach", (55, 220, 330), (28.0, 60.0, 55.0)),
]


def _paint(
    vol: np.ndarray, label: int, centre: tuple[float, ...], radii: tuple[float, ...]
) -> None:
    """Set an ellipsoid to ``label`` in place, computing only inside its bounding box."""
    box = tuple(
        slice(max(int(c - r) - 1, 0), min(int(c + r) + 2, s))
        for c, r, s in zip(centre, radii, vol.shape, strict=True)
    )
    grid = np.ogrid[box]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0
    vol[box][inside] = label


def make_case(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and prediction, uint8 (150, 512, 512) label maps with classes 0..8."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE, dtype=np.uint8)
    pred = np.zeros(SHAPE, dtype=np.uint8)
    # Large organs first so the small ones painted later stay visible.
    order = sorted(range(len(ORGANS)), key=lambda i: -math.prod(ORGANS[i][2]))
    for i in order:
        _, centre, radii = ORGANS[i]
        _paint(gt, i + 1, centre, radii)
        shift = tuple(c + rng.uniform(-3, 3) for c in centre)
        scale = tuple(r * rng.uniform(0.85, 1.15) for r in radii)
        _paint(pred, i + 1, shift, scale)
    # Stray false positives for three organs, anywhere in the volume.
    for label in (2, 5, 8):
        for _ in range(int(rng.integers(3, 12))):
            pred[tuple(int(rng.integers(0, s)) for s in SHAPE)] = label
    return gt, pred


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(method: str, case_path: str) -> dict[str, Any]:
    """Run one implementation on the saved case; time and peak RSS above the loaded case."""
    with np.load(case_path) as data:
        gt, pred = data["gt"], data["pred"]
    base = _rss_bytes()
    results: list[list[float]] = []
    t0 = time.perf_counter()
    if method == "medpy":
        from medpy.metric import binary

        for k in range(1, NUM_CLASSES):
            p, g = pred == k, gt == k
            # TransUNet's calculate_metric_percase.
            if p.sum() > 0 and g.sum() > 0:
                results.append([float(binary.dc(p, g)), float(binary.hd95(p, g))])
            elif p.sum() > 0:
                results.append([1.0, 0.0])
            else:
                results.append([0.0, 0.0])
    else:
        from mtunet.metrics import case_metrics

        spacing = SPACING if method == "mtunet_mm" else None
        rows = case_metrics(pred, gt, NUM_CLASSES, spacing=spacing)
        results = [[r["dice"], r["hd95"]] + ([r["hd95_mm"]] if spacing else []) for r in rows]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"seconds": seconds, "peak_mem_mb": max(peak - base, 0) / 2**20, "values": results}


def _run_child(method: str, case_path: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", method, case_path],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _machine_info() -> dict[str, Any]:
    import medpy
    import scipy

    return machine_info("cpu", scipy=scipy.__version__, medpy=getattr(medpy, "__version__", "?"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one child measurement)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "metrics_speed.json"
    )
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "CASE"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-medpy", action="store_true", help="only time mtunet.metrics")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(*args.worker)))
        return 0

    from mtunet.fileio import write_json

    gt, pred = make_case()
    with tempfile.TemporaryDirectory() as tmp:
        case_path = os.path.join(tmp, "case.npz")
        np.savez(case_path, gt=gt, pred=pred)
        runs = {m: _run_child(m, case_path) for m in ("mtunet", "mtunet_mm")}
        if not args.skip_medpy:
            runs["medpy"] = _run_child("medpy", case_path)

    ours = runs["mtunet"]
    identical = None
    speedup = None
    if "medpy" in runs:
        ref = runs["medpy"]
        identical = ref["values"] == ours["values"]  # exact float equality, class by class
        speedup = ref["seconds"] / ours["seconds"]
    names = [name for name, _, _ in ORGANS]
    print(f"case {SHAPE} uint8, 8 organs, stray false positives in classes 2, 5, 8")
    print(f"{'implementation':<34}{'time (s)':>10}{'peak mem (MB)':>15}")
    labels = {
        "medpy": "medpy dc + hd95 (voxels)",
        "mtunet": "mtunet.metrics (voxels)",
        "mtunet_mm": "mtunet.metrics (voxels + mm)",
    }
    for m in ("medpy", "mtunet", "mtunet_mm"):
        if m in runs:
            print(f"{labels[m]:<34}{runs[m]['seconds']:>10.2f}{runs[m]['peak_mem_mb']:>15.0f}")
    if speedup is not None:
        print(f"speed-up {speedup:.1f}x, values identical: {identical}")
    print(f"{'organ':<14}{'dice':>10}{'hd95 (vox)':>12}{'hd95 (mm)':>12}")
    for name, v, vm in zip(names, ours["values"], runs["mtunet_mm"]["values"], strict=True):
        print(f"{name:<14}{v[0]:>10.4f}{v[1]:>12.3f}{vm[2]:>12.3f}")

    write_json(
        args.out,
        {
            "case": {
                "shape": list(SHAPE),
                "num_classes": NUM_CLASSES,
                "spacing_mm": list(SPACING),
                "seed": SEED,
                "organs": names,
                "stray_false_positive_classes": [2, 5, 8],
            },
            "machine": _machine_info(),
            "runs": {
                m: {"seconds": r["seconds"], "peak_mem_mb": r["peak_mem_mb"]}
                for m, r in runs.items()
            },
            "speedup_vs_medpy": speedup,
            "identical_values": identical,
            "values": {
                name: {"dice": v[0], "hd95": v[1], "hd95_mm": vm[2]}
                for name, v, vm in zip(
                    names, ours["values"], runs["mtunet_mm"]["values"], strict=True
                )
            },
        },
    )
    print(f"wrote {args.out}")
    return 0 if identical in (None, True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
