"""The intensity-threshold baseline: the bar a model that learnt shape and position must clear.

A classifier that looks at one voxel's intensity only: the [0, 1] intensity range is cut into
``bins`` bins and every bin is given ONE class, learnt from the training slices:

* ``"map"``: the most frequent class at that intensity (the accuracy-optimal rule);
* ``"balanced"``: the class whose intensity histogram is highest there (each class's
  histogram normalised to sum 1), which favours small organs.

``threshold_baseline_dice(manifest, rule="auto")`` chooses between the two without looking
at the split it reports: on the validation volumes where the dataset has them, otherwise on
the training cases (their slices stacked per case). Dice is scored per case and class with
the published conventions (prediction empty: 0; ground truth empty and prediction not: 1).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.data.common import read_slice, read_volume, slice_case_name
from mtunet.data.manifest import Manifest, load_manifest

RULES = ("map", "balanced")


def case_dice(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> list[float]:
    """Per-class Dice (classes 1..C-1) of one case with the published empty-mask conventions.

    Args:
        pred: Integer label map, any shape.
        gt: Ground truth, same shape.
        num_classes: Classes including background.

    Returns:
        ``num_classes - 1`` values in [0, 1].
    """
    out = []
    for c in range(1, num_classes):
        p, g = pred == c, gt == c
        ps, gs = int(p.sum()), int(g.sum())
        if ps and gs:
            out.append(2.0 * int((p & g).sum()) / (ps + gs))
        elif ps:
            out.append(1.0)
        else:
            out.append(0.0)
    return out


def _bin_index(image: np.ndarray, bins: int) -> np.ndarray:
    return np.clip((image * bins).astype(np.int64), 0, bins - 1)


def train_histogram(m: Manifest, bins: int) -> np.ndarray:
    """(num_classes, bins) voxel counts of each class per intensity bin on the training slices."""
    train = m.paths("train", "slices")
    if not train:
        raise ValueError(f"{m.path}: no training slices to fit the baseline on")
    hist = np.zeros((m.num_classes, bins), dtype=np.float64)
    for path in train:
        image, label = read_slice(path)
        np.add.at(hist, (label.astype(np.int64).ravel(), _bin_index(image, bins).ravel()), 1.0)
    return hist


def bin_classes(hist: np.ndarray, rule: str) -> np.ndarray:
    """The class given to each intensity bin by ``rule`` (``"map"`` or ``"balanced"``)."""
    if rule not in RULES:
        raise ValueError(f"rule: must be one of {RULES} or 'auto', got {rule!r}")
    if rule == "balanced":
        hist = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
    return hist.argmax(axis=0).astype(np.uint8)


def _cases(m: Manifest, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, label) per case of ``split``: its volumes, or for ``train`` the stacked slices."""
    if split == "train":
        by_case: dict[str, list[Path]] = defaultdict(list)
        for path in m.paths("train", "slices"):
            by_case[slice_case_name(path)].append(path)
        for case in sorted(by_case):
            pairs = [read_slice(p) for p in by_case[case]]
            yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        return
    vols = m.paths(split, "volumes")
    if not vols:
        raise ValueError(f"{m.path}: split {split!r} has no volumes")
    for path in vols:
        image, label, _, _ = read_volume(path)
        yield image, label


def score_bins(m: Manifest, classes: np.ndarray, split: str) -> np.ndarray:
    """(n_cases, num_classes - 1) Dice of the bin classifier on the cases of ``split``."""
    bins = len(classes)
    return np.asarray(
        [
            case_dice(classes[_bin_index(img, bins)], lab, m.num_classes)
            for img, lab in _cases(m, split)
        ]
    )


def selection_split(m: Manifest) -> str:
    """Where the rule is chosen: validation volumes if the dataset has any, else training."""
    return "val" if "val" in m.splits and m.paths("val", "volumes") else "train"


def threshold_baseline_dice(
    manifest: Manifest | str | Path,
    rule: str = "auto",
    bins: int = 256,
    split: str = "test",
) -> dict[str, Any]:
    """DSC of the one-class-per-intensity classifier on ``split``.

    Args:
        manifest: A :class:`Manifest` or a path to ``dataset.json`` / its folder.
        rule: ``"map"``, ``"balanced"``, or ``"auto"``: the one with the higher mean Dice on
            :func:`selection_split` (never on ``split`` itself, unless it is that split).
        bins: Intensity bins over [0, 1].
        split: The split scored (its volumes).

    Returns:
        ``{"dsc": mean DSC in %, "per_class": {name: DSC %}, "n_cases", "rule", "bins",
        "bin_classes": [class per bin], "selected_on": split the rule was chosen on, or None
        for a fixed rule, "selection_dsc": {rule: mean DSC % there} or None}``.
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    if rule != "auto":
        bin_classes(np.zeros((m.num_classes, 1)), rule)  # validate before reading data
    hist = train_histogram(m, bins)
    selected_on, selection_dsc = None, None
    if rule == "auto":
        selected_on = selection_split(m)
        selection_dsc = {
            r: round(float(score_bins(m, bin_classes(hist, r), selected_on).mean() * 100.0), 4)
            for r in RULES
        }
        # Ties go to "map", the accuracy-optimal rule.
        rule = max(RULES, key=lambda r: (selection_dsc[r], r == "map"))
    classes = bin_classes(hist, rule)
    scores = score_bins(m, classes, split)
    per_class = scores.mean(axis=0) * 100.0
    return {
        "dsc": round(float(per_class.mean()), 4),
        "per_class": {
            name: round(float(v), 4) for name, v in zip(m.class_names[1:], per_class, strict=True)
        },
        "n_cases": len(scores),
        "rule": rule,
        "bins": bins,
        "bin_classes": classes.tolist(),
        "selected_on": selected_on,
        "selection_dsc": selection_dsc,
    }
