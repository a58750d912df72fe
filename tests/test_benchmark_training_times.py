"""benchmarks/training_times.py on a fake workspace: one row per run, merged by label."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from mtunet.fileio import read_json, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import training_times as tt


def _train_json(
    folder: Path, seconds: list[float], val: list[float | None], **machine: Any
) -> None:
    history = [
        {"epoch": i + 1, "train_seconds": s, "val_dice": v, "train_dice": {"liver": 0.1 * i}}
        for i, (s, v) in enumerate(zip(seconds, val, strict=True))
    ]
    write_json(
        folder / "train.json",
        {
            "history": history,
            "timings": {"total_seconds": sum(seconds) + 1.0},
            "train_config": {"epochs": len(seconds), "lr": 0.002, "cpu_kernels": "portable"},
            "machine": {"threads": 2, "cpu": "Test CPU", **machine},
        },
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    _train_json(tmp_path / "models/acdc/mtunet/seed1", [1.23456, 2.0], [0.5, 0.75],
                denormals="flushed")  # fmt: skip
    _train_json(tmp_path / "models/synapse/unet/seed7", [3.0], [None])
    return tmp_path


def test_one_row_per_run_with_its_epochs_and_settings(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "times.json"
    rows = tt.main(["--workspace", str(workspace), "--label", "a", "--out", str(out)])["rows"]
    assert read_json(out)["rows"] == rows
    acdc, synapse = rows
    assert (acdc["run"], synapse["run"]) == ("acdc/mtunet/seed1", "synapse/unet/seed7")
    assert acdc["epoch_seconds"] == [1.235, 2.0]
    assert acdc["train_seconds"] == 3.235
    assert acdc["total_seconds"] == pytest.approx(4.235, abs=1e-3)
    assert acdc["val_dice"] == [0.5, 0.75]
    assert acdc["final_train_dice"] == {"liver": 0.1}
    assert (acdc["epochs"], acdc["lr"], acdc["threads"]) == (2, 0.002, 2)
    assert acdc["denormals"] == "flushed"
    assert synapse["denormals"] == "kept"  # runs from before the setting kept them
    assert synapse["val_dice"] == [None]


def test_a_label_replaces_only_its_own_rows(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "times.json"
    tt.main(["--workspace", str(workspace), "--label", "a", "--out", str(out)])
    tt.main(["--workspace", str(workspace), "--label", "b", "--out", str(out)])
    _train_json(workspace / "models/synapse/unet/seed7", [9.0], [None])
    rows = tt.main(["--workspace", str(workspace), "--label", "a", "--out", str(out)])["rows"]
    by_key = {(r["label"], r["run"]): r["train_seconds"] for r in rows}
    assert by_key[("a", "synapse/unet/seed7")] == 9.0
    assert by_key[("b", "synapse/unet/seed7")] == 3.0
    assert len(by_key) == 4


def test_a_workspace_without_runs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no models"):
        tt.main(["--workspace", str(tmp_path), "--label", "a", "--out", str(tmp_path / "t.json")])
