"""The intensity-threshold baseline: exact on separable data, its rule never chosen on test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mtunet.baseline as baseline
from mtunet.baseline import threshold_baseline_dice
from mtunet.data import load_manifest
from mtunet.data.common import write_h5, write_npz
from mtunet.fileio import write_json


def test_threshold_baseline_exact_on_separable_data(tmp_path: Path) -> None:
    # Class c lives at intensity 0.1 + 0.3 c: the baseline must be perfect.
    label = np.array([[0, 1], [2, 3]], np.uint8)
    image = (0.1 + 0.3 * label).astype(np.float32)
    write_npz(tmp_path / "train_npz/a_slice000.npz", {"image": image, "label": label})
    write_h5(tmp_path / "test_vol_h5/b.npy.h5", {"image": image[None], "label": label[None]})
    from mtunet.fileio import write_json

    write_json(
        tmp_path / "dataset.json",
        {
            "name": "acdc",
            "num_classes": 4,
            "class_names": ["background", "rv", "myo", "lv"],
            "modality": "MR",
            "preprocessing": {"kind": "minmax"},
            "splits": {
                "train": {"cases": ["a"], "slices": ["train_npz/a_slice000.npz"]},
                "test": {"cases": ["b"], "volumes": ["test_vol_h5/b.npy.h5"]},
            },
        },
    )
    base = threshold_baseline_dice(load_manifest(tmp_path), bins=10)
    assert base["dsc"] == 100.0
    assert (
        base["bin_classes"][1] == 0 and base["bin_classes"][4] == 1 and base["bin_classes"][7] == 2
    )


def _dataset(root: Path, with_val: bool) -> Path:
    """Two training cases, one test case and optionally one validation case, 3 classes."""
    rng = np.random.default_rng(0)

    def pair() -> tuple[np.ndarray, np.ndarray]:
        label = rng.integers(0, 3, (2, 8, 8)).astype(np.uint8)
        image = np.clip(0.2 + 0.3 * label + rng.normal(0, 0.2, label.shape), 0, 1)
        return image.astype(np.float32), label

    slices = []
    for case in ("a", "b"):
        image, label = pair()
        for z in range(2):
            name = f"train_npz/{case}_slice{z:03d}.npz"
            write_npz(root / name, {"image": image[z], "label": label[z]})
            slices.append(name)
    splits: dict[str, Any] = {"train": {"cases": ["a", "b"], "slices": slices}}
    for split, case in (("test", "t"), ("val", "v")):
        if split == "val" and not with_val:
            continue
        image, label = pair()
        write_h5(root / f"{split}_vol_h5/{case}.npy.h5", {"image": image, "label": label})
        splits[split] = {
            "cases": [case],
            "slices": [],
            "volumes": [f"{split}_vol_h5/{case}.npy.h5"],
        }
    write_json(
        root / "dataset.json",
        {
            "name": "acdc",
            "num_classes": 3,
            "class_names": ["background", "c1", "c2"],
            "modality": "MR",
            "preprocessing": {"kind": "minmax"},
            "splits": splits,
        },
    )
    return root / "dataset.json"


@pytest.mark.parametrize("with_val", [True, False])
def test_rule_is_chosen_off_the_test_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_val: bool
) -> None:
    manifest = load_manifest(_dataset(tmp_path, with_val))
    reads: list[str] = []
    original = baseline._cases

    def logged(m: Any, split: str) -> Any:
        reads.append(split)
        return original(m, split)

    monkeypatch.setattr(baseline, "_cases", logged)
    res = threshold_baseline_dice(manifest, rule="auto", bins=16)
    chosen_on = "val" if with_val else "train"
    assert res["selected_on"] == chosen_on
    # Both rules scored on the selection split, and the test split read once: to report.
    assert reads == [chosen_on, chosen_on, "test"]
    assert res["rule"] == max(res["selection_dsc"], key=res["selection_dsc"].get)
    fixed = threshold_baseline_dice(manifest, rule=res["rule"], bins=16)
    assert fixed["dsc"] == res["dsc"] and fixed["selected_on"] is None
    for rule in ("map", "balanced"):
        on_sel = threshold_baseline_dice(manifest, rule=rule, bins=16, split=chosen_on)
        assert on_sel["dsc"] == res["selection_dsc"][rule]


def test_bad_rule() -> None:
    with pytest.raises(ValueError, match="rule: must be one of"):
        baseline.bin_classes(np.zeros((3, 4)), "median")
