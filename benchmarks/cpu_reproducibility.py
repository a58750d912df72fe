"""Do two CPUs of different vector width train the same weights? Native vs portable kernels.

An AVX2-only machine is simulated on this one by capping every library at its AVX2 code
path from outside (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``,
``MKL_ENABLE_INSTRUCTIONS=AVX2``: what those libraries pick by themselves on such a CPU).
Four runs of the quick training (``params.yaml``, ``--epochs`` epochs on the Synapse
phantoms, each in a fresh process, through ``benchmarks/train_loop_speed.py``):

* this CPU and the simulated AVX2 CPU with ``cpu_kernels: native``;
* the same two with ``cpu_kernels: portable``.

Reported: the SHA-256 of the final weights, the last epoch's loss and images/s. Portable
kernels make the machines agree when the two digests are equal. Prints a table and writes
``benchmarks/results/cpu_reproducibility.json``. Usage::

    python benchmarks/cpu_reproducibility.py --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: What an AVX2-only x86-64 CPU's libraries choose on their own.
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
RUNS = {
    "this CPU, native": ("fused_ea", {}),
    "AVX2 CPU, native": ("fused_ea", AVX2_MACHINE),
    "this CPU, portable": ("fused_ea_portable", {}),
    "AVX2 CPU, portable": ("fused_ea_portable", AVX2_MACHINE),
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS / "cpu_reproducibility.json")
    args = p.parse_args(argv)
    import torch
    from machine import machine_info
    from train_loop_speed import _dataset

    from mtunet.fileio import write_json

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _dataset(Path(tmp))
        for name, (variant, env) in RUNS.items():
            cmd = [sys.executable, str(HERE / "train_loop_speed.py"), "--child", variant]
            cmd += ["--data", str(data), "--epochs", str(args.epochs)]
            clean = {k: v for k, v in os.environ.items() if k not in (*AVX2_MACHINE, "MKL_CBWR")}
            done = subprocess.run(
                cmd, check=True, capture_output=True, text=True, env={**clean, **env}
            )
            run = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"run": name, "variant": variant, "env": env, **run})
            print(f"{name}: {run['weights_sha256'][:16]}", flush=True)
    by = {r["run"]: r for r in rows}
    same_native = (
        by["this CPU, native"]["weights_sha256"] == by["AVX2 CPU, native"]["weights_sha256"]
    )
    same_portable = (
        by["this CPU, portable"]["weights_sha256"] == by["AVX2 CPU, portable"]["weights_sha256"]
    )
    print(f"{'run':<20} {'weights sha256':<18} {'last loss':>12} {'img/s':>7}")
    for r in rows:
        print(
            f"{r['run']:<20} {r['weights_sha256'][:16]:<18} {r['final_loss']:>12.9f} "
            f"{r['images_per_s']:>7.2f}"
        )
    print(f"identical across the two CPUs: native {same_native}, portable {same_portable}")
    result = {
        "machine": machine_info(torch.device("cpu")),
        "epochs": args.epochs,
        "rows": rows,
        "identical_native": same_native,
        "identical_portable": same_portable,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
