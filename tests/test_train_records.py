"""What a training run records for the scale-out launcher: byte-identical ``model.pt``,
the resources it had in ``train.json``, and ``num_workers: auto``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from training_data import make_dataset, quick

import mtunet.training.loop as loop
from mtunet.checkpoint import load_checkpoint, save_checkpoint
from mtunet.model import MTUNetConfig
from mtunet.training import TrainConfig, train
from mtunet.training.config import CPUS_ENV, MAX_AUTO_WORKERS, available_cpus, loader_workers

MODEL = MTUNetConfig(width_mult=0.125, img_size=32)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_same_run_twice_writes_the_same_model_pt_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_dataset(tmp_path / "data", n_train=6, n_val_volumes=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv(CPUS_ENV, "1")
    a = train(quick(num_workers="auto"), MODEL, manifest, tmp_path / "a")
    b = train(quick(num_workers="auto"), MODEL, manifest, tmp_path / "b")
    # Wall-clock time differs between the two runs, and stays in train.json only.
    assert a["history"][0]["train_seconds"] > 0 and b["history"][0]["train_seconds"] > 0
    assert _sha(tmp_path / "a" / "model.pt") == _sha(tmp_path / "b" / "model.pt")
    ck = load_checkpoint(tmp_path / "a" / "model.pt")
    assert ck["history"] and all("train_seconds" not in h for h in ck["history"])
    # last.pt keeps the times, so a resumed run's train.json still has them.
    last = load_checkpoint(tmp_path / "a" / "last.pt")
    assert all(h["train_seconds"] > 0 for h in last["history"])
    assert a["device"] == "cpu"
    assert a["resources"] == {
        "cuda_visible_devices": "3",
        "device_name": None,
        "cpus": 1,
        "torch_threads": a["resources"]["torch_threads"],
        "torch_threads_default": a["resources"]["torch_threads_default"],
        "loader_workers": 0,  # auto on the CPU
    }
    assert a["train_config"]["num_workers"] == "auto"


def test_train_threads_fix_the_count_and_the_record_shows_what_they_overrode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from mtunet import numerics

    monkeypatch.setattr(numerics, "_THREADS_BEFORE_PIN", None)  # as in a fresh process
    manifest = make_dataset(tmp_path / "data", n_train=4, n_val_volumes=0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # as a 3-core machine starts the process
        got = train(quick(threads=1), MODEL, manifest, tmp_path / "a")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert got["resources"]["torch_threads"] == 1
    assert got["train_config"]["threads"] == 1
    assert got["machine"]["threads"] == 1
    assert got["resources"]["torch_threads_default"] == 3
    assert got["machine"]["threads_default"] == 3


def _payload(names: list[str]) -> dict[str, object]:
    """A minimal checkpoint whose history keys are the strings in ``names``."""
    import torch

    return {
        "format": "mtunet-checkpoint",
        "version": 1,
        "model_config": {"img_size": [32, 32]},
        "train_config": {},
        "data": {"class_names": ["background", "aorta"]},
        "epoch": 1,
        "global_step": 2,
        "model": {"w": torch.arange(3.0)},
        "selection": {"rule": "last"},
        "history": [{names[0]: 1, "dice": {names[1]: 0.5}}, {names[0]: 2, "dice": {names[1]: 0.7}}],
    }


def test_equal_checkpoints_have_equal_bytes_whatever_their_strings_are(tmp_path: Path) -> None:
    """Strings shared between records (built in this process) or not (read back from a
    file) must not change the bytes: pickle shares objects by identity."""
    shared = ["epoch", "aorta"]
    fresh = ["".join(["ep", "och"]), "".join(["aor", "ta"])]
    assert fresh[0] == shared[0] and fresh[0] is not shared[0]
    a, b = _payload(shared), _payload(shared)
    b["history"] = [  # the second record with strings of its own
        b["history"][0],  # type: ignore[index]
        {fresh[0]: 2, "dice": {fresh[1]: 0.7}},
    ]
    save_checkpoint(tmp_path / "a.pt", a)
    save_checkpoint(tmp_path / "b.pt", b)
    assert _sha(tmp_path / "a.pt") == _sha(tmp_path / "b.pt")
    # Different content still gives different bytes.
    b["history"][1]["dice"][fresh[1]] = 0.8  # type: ignore[index]
    save_checkpoint(tmp_path / "c.pt", b)
    assert _sha(tmp_path / "a.pt") != _sha(tmp_path / "c.pt")


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_a_resumed_run_writes_the_uninterrupted_model_pt_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_dataset(tmp_path / "data", n_train=6, n_val_volumes=1)  # best_val
    train(quick(), MODEL, manifest, tmp_path / "full")
    real, calls = loop.train_epoch, []

    def killed_in_epoch_2(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise _Killed
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(loop, "train_epoch", killed_in_epoch_2)
        with pytest.raises(_Killed):
            train(quick(), MODEL, manifest, tmp_path / "part")
    assert load_checkpoint(tmp_path / "part" / "last.pt")["epoch"] == 1
    res = train(quick(), MODEL, manifest, tmp_path / "part")
    assert res["resumed_from_epoch"] == 1
    assert _sha(tmp_path / "full" / "model.pt") == _sha(tmp_path / "part" / "model.pt")


def test_num_workers_auto_leaves_the_main_process_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv(CPUS_ENV, "4")
    assert loader_workers("auto", "cuda") == 3
    assert loader_workers("auto", "mps") == 3
    assert loader_workers("auto", "cpu") == 0  # workers would take the training threads' cores
    assert loader_workers("auto", "cuda", processes=2) == 1  # 2 CPUs per process
    monkeypatch.setenv(CPUS_ENV, "1")
    assert loader_workers("auto", "cuda") == 0
    monkeypatch.setenv(CPUS_ENV, "64")
    assert loader_workers("auto", "cuda") == MAX_AUTO_WORKERS
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun: 8 processes on this machine
    assert loader_workers("auto", "cuda", processes=16) == 7
    # A number is taken as given, whatever the device.
    assert loader_workers(2, "cpu") == 2


def test_available_cpus_reads_the_allocation_then_the_affinity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CPUS_ENV, "5")
    assert available_cpus() == 5
    monkeypatch.delenv(CPUS_ENV)
    import os

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == expected
    monkeypatch.setenv(CPUS_ENV, "two")
    with pytest.raises(ValueError, match="MTUNET_CPUS: expected a positive integer"):
        available_cpus()


@pytest.mark.parametrize("value", [-1, "many", 1.5, True])
def test_num_workers_rejects_other_values(value: object) -> None:
    with pytest.raises(ValueError, match="num_workers"):
        TrainConfig.from_dict({"num_workers": value})


def test_num_workers_auto_loads_from_params() -> None:
    assert TrainConfig.from_dict({"num_workers": "auto"}).num_workers == "auto"
    assert TrainConfig.from_dict({"num_workers": 3}).num_workers == 3
