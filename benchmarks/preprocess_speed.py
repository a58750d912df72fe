"""Preprocessing throughput on full-size synthetic Synapse cases (512 x 512, ~150 slices).

Each measurement runs in a fresh subprocess so that its peak resident memory (``VmHWM``
of ``/proc/self/status``; ``ru_maxrss`` elsewhere) belongs to that run alone; the
baseline after imports is reported too. Cases are preprocessed once as a training case
(one ``.npz`` per slice) and once as a test case (one ``.npy.h5`` volume); reading the
gzipped NIfTI pair is included.

Usage: ``python benchmarks/preprocess_speed.py [--slices 150] [--size 512]``. Prints a
table and writes ``benchmarks/results/preprocess_speed.json`` (sorted keys).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info  # benchmarks/ is the script's folder, on sys.path

RESULTS = Path(__file__).resolve().parent / "results" / "preprocess_speed.json"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from mtunet.data import preprocess

def peak_mb():
    # VmHWM: this process's own peak RSS (ru_maxrss survives exec and can report the
    # parent's peak on Linux).
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

base = peak_mb()
raw, out, role = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cfg = {"train_cases": [5], "test_cases": [1]}
t0 = time.perf_counter()
m = preprocess("synapse", cfg, raw, out)
dt = time.perf_counter() - t0
peak = peak_mb()
print(json.dumps({"seconds": dt, "peak_rss_mb": peak, "baseline_rss_mb": base,
                  "slices": sum(s[0] for s in m["shapes"]["train"].values())
                           + sum(s[0] for s in m["shapes"]["test"].values())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from mtunet.data.synthetic import SynapsePhantomConfig, write_phantoms
    from mtunet.fileio import write_json

    cfg = SynapsePhantomConfig(
        n_train=1, n_test=1, size=args.size, min_slices=args.slices, max_slices=args.slices
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t0 = time.perf_counter()
        write_phantoms("synapse", cfg, raw)  # cases 0005 (train) and 0001 (test)
        gen_s = time.perf_counter() - t0
        # One child process runs the whole stage on both cases (end to end, dataset.json
        # included); a case costs about the total / 2. Repeated to show the spread.
        for rep in range(args.repeats):
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(raw), str(Path(tmp) / f"out{rep}"), "x"],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(res.stdout.strip().splitlines()[-1])
            r["run"] = rep
            r["cases"] = 2
            r["seconds_per_case"] = r["seconds"] / 2
            r["slices_per_s"] = r["slices"] / r["seconds"]
            r["peak_rss_above_baseline_mb"] = r["peak_rss_mb"] - r["baseline_rss_mb"]
            rows.append(r)

    print(
        f"Synthetic Synapse case {args.size}x{args.size}x{args.slices} "
        f"(phantom generation {gen_s:.1f} s, not timed below)"
    )
    print("1 training case (npz slices) + 1 test case (npy.h5 volume), end to end")
    print(
        f"{'run':<5}{'slices':>8}{'total s':>9}{'s/case':>8}{'slices/s':>10}"
        f"{'peak RSS MB':>13}{'above base MB':>15}"
    )
    for r in rows:
        print(
            f"{r['run']:<5}{r['slices']:>8}{r['seconds']:>9.2f}{r['seconds_per_case']:>8.2f}"
            f"{r['slices_per_s']:>10.1f}{r['peak_rss_mb']:>13.0f}"
            f"{r['peak_rss_above_baseline_mb']:>15.0f}"
        )
    ok = all(r["seconds_per_case"] < 10 and r["peak_rss_mb"] < 2048 for r in rows)
    print(f"target (< 10 s per case, < 2 GB): {'met' if ok else 'NOT met'}")
    write_json(
        args.out,
        {
            "benchmark": "preprocess_speed",
            "case": {"size": args.size, "slices": args.slices},
            "phantom_generation_s": round(gen_s, 3),
            "results": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                for r in rows
            ],
            "target": {"seconds_per_case": 10, "peak_memory_mb": 2048},
            "target_met": ok,
            "machine": machine_info("cpu"),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
