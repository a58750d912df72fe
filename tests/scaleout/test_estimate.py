"""List scheduling on N GPUs and the per-stage times it uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtunet.scaleout.estimate import Durations, Job, format_seconds, parse_run, schedule
from mtunet.scaleout.plan import train_epochs


def test_runs_spread_over_the_gpus_in_order() -> None:
    jobs = [Job(f"train@synapse-m-{s}", 100.0, 1.0, 1) for s in range(5)]
    one = schedule(jobs, gpus=1, cpus=16)
    four = schedule(jobs, gpus=4, cpus=16)
    assert one.wall_seconds == 500.0
    assert four.wall_seconds == 200.0  # four at once, then the fifth
    assert four.start["train@synapse-m-4"] == 100.0
    assert four.gpu_seconds == one.gpu_seconds == 500.0


def test_fractional_gpus_pack_runs_on_one_gpu() -> None:
    jobs = [Job(f"t{i}", 60.0, 0.5, 1) for i in range(4)]
    assert schedule(jobs, gpus=1, cpus=8).wall_seconds == 120.0
    assert schedule(jobs, gpus=2, cpus=8).wall_seconds == 60.0
    # 0.4 + 0.4 fit one GPU, a third needs another.
    thirds = [Job(f"t{i}", 10.0, 0.4, 1) for i in range(3)]
    assert schedule(thirds, gpus=1, cpus=8).wall_seconds == 20.0


def test_dependencies_cpus_and_whole_gpus() -> None:
    jobs = [
        Job("prep", 10.0, 0.0, 1),
        Job("train@a-m-1", 100.0, 1.0, 2, ("prep",)),
        Job("train@a-m-2", 100.0, 1.0, 2, ("prep",)),
        Job("eval@a-m-1", 5.0, 1.0, 1, ("train@a-m-1",)),
        Job("report", 1.0, 0.0, 1, ("eval@a-m-1", "train@a-m-2")),
    ]
    s = schedule(jobs, gpus=2, cpus=4)
    assert s.start["train@a-m-1"] == s.start["train@a-m-2"] == 10.0
    assert s.start["report"] == 115.0 and s.wall_seconds == 116.0
    # Two CPUs: the trainings (2 CPUs each) take turns although two GPUs are free.
    assert schedule(jobs, gpus=2, cpus=2).wall_seconds == 216.0
    big = [Job("big", 50.0, 2.0, 1), Job("small", 50.0, 1.0, 1)]
    assert schedule(big, gpus=2, cpus=4).wall_seconds == 100.0
    assert schedule(big, gpus=3, cpus=4).wall_seconds == 50.0


def test_unknown_times_count_as_zero_and_are_listed() -> None:
    s = schedule([Job("a", None, 0.0, 1), Job("b", 3.0, 0.0, 1, ("a",))], gpus=0, cpus=1)
    assert s.wall_seconds == 3.0 and s.unknown == ("a",)


def test_impossible_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="asks for 4 CPUs, the cluster has 2"):
        schedule([Job("a", 1.0, 0.0, 4)], gpus=1, cpus=2)
    with pytest.raises(ValueError, match=r"asks for 1\.0 GPUs, the cluster has 0"):
        schedule([Job("a", 1.0, 1.0, 1)], gpus=0, cpus=2)
    with pytest.raises(ValueError, match="never runs"):
        schedule([Job("a", 1.0, 0.0, 1, ("b",)), Job("b", 1.0, 0.0, 1, ("a",))], 0, 1)


def test_parse_run_names() -> None:
    assert parse_run("train@synapse-mtunet-1234") == ("synapse", "mtunet", "1234")
    assert parse_run("train_ablation@acdc-win_size-2-7") == ("acdc", "win_size-2", "7")
    assert parse_run("evaluate@acdc-pkg.mod:build-1") == ("acdc", "pkg.mod:build", "1")
    assert parse_run("compare@acdc") is None and parse_run("report") is None


def _train_json(path: Path, seconds: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    history = [{"epoch": i + 1, "train_seconds": s} for i, s in enumerate(seconds)]
    path.write_text(json.dumps({"history": history}))


def test_durations_given_then_measured_then_other_variants(tmp_path: Path) -> None:
    _train_json(tmp_path / "models/synapse/unet/seed1/train.json", [4.0, 6.0, 5.0])
    _train_json(tmp_path / "models/synapse/mtunet/seed1/train.json", [10.0, 12.0])
    d = Durations(tmp_path, epochs=100)
    assert d.seconds("train@synapse-unet-2", "train")[0] == 500.0  # median 5 s, any seed
    seconds, source = d.seconds("train@synapse-attention_unet-1", "train")
    assert seconds == 100 * 6.0 and "other synapse runs" in source  # median of 4,6,5,10,12
    assert d.seconds("train@acdc-unet-1", "train") == (None, "unknown")
    given = Durations(tmp_path, 100, {"*": 2.0, "acdc": 1.0})
    assert given.seconds("train@synapse-unet-1", "train")[0] == 200.0
    assert given.seconds("train@acdc-unet-1", "train")[0] == 100.0
    per_dataset = Durations(tmp_path, {"synapse": 30, "acdc": 20}, {"*": 2.0})
    assert per_dataset.seconds("train@synapse-unet-1", "train") == (60.0, "30 x 2 s, given")
    assert per_dataset.seconds("train@acdc-unet-1", "train")[0] == 40.0


def test_durations_of_other_stages_come_from_launcher_records(tmp_path: Path) -> None:
    logs = tmp_path / "logs/study"
    logs.mkdir(parents=True)
    for name, start, end, rc in [
        ("evaluate@acdc-unet-1", 0.0, 30.0, 0),
        ("evaluate@acdc-unet-2", 0.0, 50.0, 0),
        ("compare@acdc", 0.0, 99.0, 1),  # failed: not a time
    ]:
        rec = {"stage": name, "started": start, "ended": end, "returncode": rc}
        (logs / f"{name}.json").write_text(json.dumps(rec))
    d = Durations(tmp_path, epochs=1)
    assert d.seconds("evaluate@acdc-unet-1", "evaluate") == (30.0, "measured")
    assert d.seconds("evaluate@acdc-mtunet-1", "evaluate")[0] == 40.0
    assert d.seconds("compare@acdc", "other") == (None, "unknown")


def test_format_seconds() -> None:
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(725) == "12 min 05 s"
    assert format_seconds(3600 * 2 + 120) == "2 h 02 min"


def test_train_epochs_per_dataset_with_the_preset_filled_in() -> None:
    datasets = {"synapse": {}, "acdc": {}}
    assert train_epochs({"datasets": datasets, "train": {}}) == {"synapse": 100, "acdc": 100}
    per_dataset = {"datasets": datasets, "train": {"epochs": {"synapse": 35, "acdc": 20}}}
    assert train_epochs(per_dataset) == {"synapse": 35, "acdc": 20}
