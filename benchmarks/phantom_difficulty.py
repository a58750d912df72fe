"""How hard each class of a preprocessed dataset is, and when training learnt it.

For each foreground class, from the training slices as the network sees them (resized to
``--img-size``, order 0 for labels and 3 for images, as ``SliceDataset``):

* ``slices``: training slices that contain the class;
* ``median_px``: its median area in pixels on those slices;
* ``contrast``: median over slices of (mean intensity inside - mean in a 2-pixel ring
  around it) / standard deviation inside: how far it stands out from its neighbours;
* ``threshold_dsc``: the intensity-only baseline's test Dice for the class
  (:mod:`mtunet.baseline`).

With ``--train-json`` (a ``train.json`` written by ``mtunet train``) it adds, from the
per-epoch training Dice that training records, the first epoch at which the class passed
``--learnt`` and its training Dice in the last epoch.

Prints a table and writes ``benchmarks/results/phantom_difficulty_<dataset>.json``. Usage::

    python benchmarks/phantom_difficulty.py data/processed/synapse \\
        --train-json models/synapse/train.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def class_statistics(manifest_path: Path, img_size: int) -> dict[str, dict[str, Any]]:
    """Per-class slice count, median area and contrast on the resized training slices."""
    from mtunet.data import load_manifest
    from mtunet.data.common import read_slice
    from mtunet.data.transforms import resize

    m = load_manifest(manifest_path)
    areas: list[list[int]] = [[] for _ in range(m.num_classes)]
    contrasts: list[list[float]] = [[] for _ in range(m.num_classes)]
    ring_struct = ndimage.generate_binary_structure(2, 1)
    for path in m.paths("train", "slices"):
        image, label = resize(*read_slice(path), (img_size, img_size))
        for c in range(1, m.num_classes):
            mask = label == c
            if not mask.any():
                continue
            areas[c].append(int(mask.sum()))
            ring = ndimage.binary_dilation(mask, ring_struct, iterations=2) & ~mask
            inside = image[mask]
            spread = float(inside.std()) if inside.size > 1 else 0.0
            if ring.any() and spread > 0:
                contrasts[c].append((float(inside.mean()) - float(image[ring].mean())) / spread)
    return {
        name: {
            "slices": len(areas[c]),
            "median_px": float(np.median(areas[c])) if areas[c] else 0.0,
            "contrast": float(np.median(contrasts[c])) if contrasts[c] else None,
        }
        for c, name in enumerate(m.class_names)
        if c > 0
    }


def learning_epochs(train_json: Path, threshold: float) -> dict[str, dict[str, Any]]:
    """First epoch whose training Dice passed ``threshold``, and the last epoch's Dice."""
    from mtunet.fileio import read_json

    history = read_json(train_json)["history"]
    out: dict[str, dict[str, Any]] = {}
    for name in history[-1].get("train_dice") or {}:
        first = next(
            (h["epoch"] for h in history if (h["train_dice"].get(name) or 0.0) >= threshold),
            None,
        )
        out[name] = {"learnt_at_epoch": first, "last_train_dice": history[-1]["train_dice"][name]}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("processed", type=Path, help="preprocessed dataset folder (dataset.json)")
    p.add_argument("--img-size", type=int, default=96)
    p.add_argument("--train-json", type=Path, default=None)
    p.add_argument("--learnt", type=float, default=0.5, help="training Dice that counts as learnt")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    from machine import machine_info

    from mtunet.baseline import threshold_baseline_dice
    from mtunet.data import load_manifest
    from mtunet.fileio import write_json

    stats = class_statistics(args.processed, args.img_size)
    base = threshold_baseline_dice(args.processed)["per_class"]
    learnt = learning_epochs(args.train_json, args.learnt) if args.train_json else {}
    for name, row in stats.items():
        row["threshold_dsc"] = base.get(name)
        row.update(learnt.get(name, {}))
    print(
        f"{'class':<14} {'slices':>6} {'median px':>9} {'contrast':>8} {'thr DSC':>8}"
        f" {'learnt at':>9} {'last Dice':>9}"
    )
    for name, row in stats.items():
        contrast = row["contrast"]
        print(
            f"{name:<14} {row['slices']:>6} {row['median_px']:>9.0f} "
            f"{(f'{contrast:.2f}' if contrast is not None else '-'):>8} "
            f"{row['threshold_dsc']:>8.1f} {row.get('learnt_at_epoch', '-')!s:>9} "
            f"{row.get('last_train_dice', float('nan')):>9.3f}"
        )
    name = load_manifest(args.processed).name
    result = {
        "machine": machine_info("cpu"),
        "dataset": str(args.processed),
        "img_size": args.img_size,
        "learnt_threshold": args.learnt,
        "train_json": str(args.train_json) if args.train_json else None,
        "classes": stats,
    }
    out = args.out or RESULTS / f"phantom_difficulty_{name}.json"
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
