"""Epoch by epoch training times of a finished study, with the settings each run had.

Reads every ``models/<ds>/<variant>/seed<seed>/train.json`` of a workspace whose study has
run (``dvc repro``) and keeps, per run, the seconds of each epoch, their sum, the schedule
(epochs, learning rate), the last epoch's training Dice per class (whether a small organ was
learnt), the validation Dice of every epoch (where the split has validation cases), the kernels, threads and denormal setting it ran with, and the processor. A run whose
epochs slow down as it trains (denormal numbers on some CPUs, docs/reproducibility.md) shows
it here, which the stage times of ``study_time.py`` cannot. Rows are stored under
``--label`` (one label per study measured), merged with the file's other labels. Writes
``benchmarks/results/training_times.json`` (sorted keys) and prints a table. Usage::

    python benchmarks/training_times.py --label "intel, flush, 50 epochs"
    python benchmarks/training_times.py --workspace /tmp/clone --label "amd, 35 epochs"
    python benchmarks/training_times.py --files one/train.json --label "lr 0.002"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "training_times.json"


def study_files(workspace: Path) -> dict[str, Path]:
    """``{"<ds>/<variant>/seed<seed>": train.json}`` of a workspace's finished study."""
    files = sorted(workspace.glob("models/*/*/seed*/train.json"))
    if not files:
        raise SystemExit(f"training_times: no models/*/*/seed*/train.json under {workspace}")
    return {"/".join(f.parent.relative_to(workspace / "models").parts): f for f in files}


def run_rows(files: dict[str, Path], label: str) -> list[dict[str, Any]]:
    """One row per training run (name: ``train.json``): its epoch times and what it ran with."""
    from mtunet.fileio import read_json

    rows = []
    for run, path in files.items():
        info = read_json(path)
        cfg = info.get("train_config", {})
        machine = info.get("machine", {})
        epochs = [round(float(e["train_seconds"]), 3) for e in info.get("history", [])]
        rows.append(
            {
                "label": label,
                "run": run,
                "epoch_seconds": epochs,
                "train_seconds": round(sum(epochs), 3),
                "total_seconds": round(float(info["timings"]["total_seconds"]), 3),
                "epochs": cfg.get("epochs"),
                "lr": cfg.get("lr"),
                "final_train_dice": (info.get("history") or [{}])[-1].get("train_dice"),
                # Per epoch; None where the run did not validate (no validation split).
                "val_dice": [e.get("val_dice") for e in info.get("history", [])],
                "cpu_kernels": cfg.get("cpu_kernels"),
                "threads": machine.get("threads"),
                # Absent from runs made before the setting existed: denormals were kept.
                "denormals": machine.get("denormals", "kept"),
                "cpu": machine.get("cpu"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Read the runs, merge them into ``--out`` under ``--label``; returns what it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=ROOT)
    parser.add_argument("--files", type=Path, nargs="+", help="train.json files instead")
    parser.add_argument("--label", required=True, help="names this study in the file")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)

    from machine import machine_info, merge_rows

    from mtunet.fileio import write_json

    if args.files:
        files = {f.stem if f.name != "train.json" else f.parent.name: f for f in args.files}
    else:
        files = study_files(args.workspace.resolve())
    rows = run_rows(files, args.label)
    print(f"{'run':<28} {'epochs':>6} {'train s':>8} {'first 5 s/ep':>12} {'last 5 s/ep':>11}")
    for r in rows:
        e = r["epoch_seconds"]
        head, tail = sum(e[:5]) / max(1, len(e[:5])), sum(e[-5:]) / max(1, len(e[-5:]))
        print(f"{r['run']:<28} {len(e):>6} {r['train_seconds']:>8.1f} {head:>12.2f} {tail:>11.2f}")
    merged = merge_rows(args.out, "rows", rows, key=lambda r: (r["label"], r["run"]))
    result = {"benchmark": "training_times", "machine": machine_info("cpu"), "rows": merged}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
