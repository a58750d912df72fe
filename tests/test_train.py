"""Training: presets, determinism, resume, model selection, logging, bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from training_data import make_dataset, quick

from mtunet.checkpoint import load_checkpoint, model_from_checkpoint
from mtunet.model import MTUNetConfig
from mtunet.training import TrainConfig, confusion_dice, poly_lr, train

MODEL = MTUNetConfig(width_mult=0.125, img_size=32)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------------- config


def test_presets_and_overrides() -> None:
    m = TrainConfig().resolved()
    assert (m.optimizer, m.lr, m.weight_decay, m.batch_size, m.epochs, m.momentum) == (
        "adam",
        1e-4,
        1e-4,
        12,
        100,
        None,
    )
    t = TrainConfig(preset="transunet").resolved()
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.epochs, t.momentum) == (
        "sgd",
        0.01,
        1e-4,
        24,
        150,
        0.9,
    )
    o = TrainConfig(preset="transunet", lr=0.05, batch_size=8).resolved()
    assert (o.lr, o.batch_size, o.epochs) == (0.05, 8, 150)
    assert TrainConfig(optimizer="sgd").resolved().momentum == 0.9
    assert TrainConfig().seed == 1234 and TrainConfig().poly_power == 0.9
    cfg = TrainConfig.from_dict({"preset": "transunet", "img_size": [64, 96], "lr": 1}, "train")
    assert cfg.img_size == (64, 96) and cfg.lr == 1.0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_make_optimizer_follows_the_resolved_config() -> None:
    from mtunet.training.build import make_optimizer

    net = torch.nn.Linear(3, 2)
    adam = make_optimizer(TrainConfig(fused_optimizer=True).resolved(), net)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.defaults["fused"] and adam.defaults["lr"] == 1e-4
    assert adam.defaults["weight_decay"] == 1e-4
    sgd = make_optimizer(TrainConfig(preset="transunet").resolved(), net)
    assert isinstance(sgd, torch.optim.SGD) and not sgd.defaults.get("fused")
    assert (sgd.defaults["lr"], sgd.defaults["momentum"]) == (0.01, 0.9)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"lr": 0}, "train.lr"),
        ({"lr": -1e-3}, "train.lr"),
        ({"weight_decay": -1}, "train.weight_decay"),
        ({"batch_size": 0}, "train.batch_size"),
        ({"epochs": 0}, "train.epochs"),
        ({"momentum": 0.9}, "train.momentum"),  # Adam has no momentum
        ({"optimizer": "sgd", "momentum": 1.5}, "train.momentum"),
        ({"seed": -1}, "train.seed"),
        ({"device": "gpu"}, "train.device"),
        ({"devices": 0}, "train.devices"),
        ({"val_every": 0}, "train.val_every"),
        ({"checkpoint_every": 0}, "train.checkpoint_every"),
        ({"img_size": 30}, "train.img_size"),
        ({"selection": "test"}, "train.selection"),
        ({"preset": "unet"}, "train.preset"),
        ({"num_workers": -1}, "train.num_workers"),
        ({"max_steps_per_epoch": 0}, "train.max_steps_per_epoch"),
        ({"lr": "fast"}, "train.lr"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_params_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.split(".")[-1]) as info:
        TrainConfig.from_dict(values, "train")
    assert field.split(".")[-1] in str(info.value)


def test_poly_schedule() -> None:
    # The published loop: steps 0 and 1 at the base rate, then one step behind (1 - k/max).
    assert poly_lr(0.01, 0, 100, 0.9) == 0.01
    assert poly_lr(0.01, 1, 100, 0.9) == 0.01
    assert poly_lr(0.01, 51, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 99, 100, 0.9) == pytest.approx(0.01 * 0.02**0.9)


# ---------------------------------------------------------------------------- runs


def test_train_outputs_selection_and_logs(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path / "data")
    out1, live1 = tmp_path / "run1", tmp_path / "live1"
    res = train(quick(), MODEL, manifest, out1, live1)

    # Outputs and what they say.
    assert {p.name for p in out1.iterdir()} == {"model.pt", "last.pt", "train.json"}
    saved = json.loads((out1 / "train.json").read_text())
    assert saved["selection"]["rule"] == "best_val"  # auto + validation volumes
    assert saved["selection"]["split"] == "val"
    assert saved["selection"]["epoch"] in (1, 2)
    assert saved["model_config"]["num_classes"] == 4  # from the dataset, not the model's 9
    assert saved["train_config"]["optimizer"] == "adam"  # resolved preset
    assert saved["global_step"] == 4 and saved["steps_per_epoch"] == 2
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert all(0.0 <= h["val_dice"] <= 1.0 for h in saved["history"])
    # Per-class training Dice of each epoch, foreground classes by name.
    for h in saved["history"]:
        assert set(h["train_dice"]) == {"c1", "c2", "c3"}
        assert all(v is None or 0.0 <= v <= 1.0 for v in h["train_dice"].values())
    assert res["selection"] == saved["selection"]
    best = max(saved["history"], key=lambda h: h["val_dice"])
    assert saved["selection"]["val_dice"] == best["val_dice"]

    model_ck = load_checkpoint(out1 / "model.pt")
    assert model_ck["optimizer"] is None and model_ck["rng"] is None
    assert model_ck["selection"]["epoch"] == saved["selection"]["epoch"]
    assert model_ck["epoch"] == saved["selection"]["epoch"]
    assert model_ck["data"]["num_classes"] == 4 and model_ck["data"]["img_size"] == [32, 32]
    last_ck = load_checkpoint(out1 / "last.pt")
    assert last_ck["epoch"] == 2 and last_ck["optimizer"]["state"]
    model, _ = model_from_checkpoint(out1 / "model.pt")
    assert model.config.num_classes == 4

    # DVCLive: per-step loss and lr, per-epoch loss and val Dice, params.
    metrics = live1 / "plots" / "metrics"
    loss_rows = (metrics / "train" / "loss.tsv").read_text().splitlines()
    col = loss_rows[0].split("\t").index("step")
    assert [r.split("\t")[col] for r in loss_rows[1:]] == ["1", "2", "3", "4"]
    assert len((metrics / "train" / "lr.tsv").read_text().splitlines()) == 5
    assert len((metrics / "train" / "epoch_loss.tsv").read_text().splitlines()) == 3
    assert len((metrics / "train" / "dice" / "c2.tsv").read_text().splitlines()) == 3
    assert len((metrics / "val" / "dice.tsv").read_text().splitlines()) == 3
    assert "optimizer: adam" in (live1 / "params.yaml").read_text()
    assert not (live1 / "dvc.yaml").exists()


class _Interrupted(Exception):
    pass


def _interrupt_at_call(monkeypatch: pytest.MonkeyPatch, n: int, exc: Exception) -> None:
    """Make the n-th loss evaluation raise ``exc`` (a crash or a NaN mid-run)."""
    import mtunet.losses

    original = mtunet.losses.CEDiceLoss.forward
    calls = {"n": 0}

    def forward(self: Any, logits: torch.Tensor, target: torch.Tensor, **kw: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == n:
            if isinstance(exc, FloatingPointError):
                return original(self, logits, target, **kw) * float("nan")
            raise exc
        return original(self, logits, target, **kw)

    monkeypatch.setattr(mtunet.losses.CEDiceLoss, "forward", forward)


@pytest.mark.slow
def test_same_params_same_weights(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path / "data", n_val_volumes=0)
    train(quick(), MODEL, manifest, tmp_path / "run1", None)
    train(quick(), MODEL, manifest, tmp_path / "run2", None)
    w1 = weights(tmp_path / "run1" / "last.pt")
    assert_same_weights(w1, weights(tmp_path / "run2" / "last.pt"))
    # A different seed gives different weights (the comparison can fail).
    train(quick(seed=8), MODEL, manifest, tmp_path / "run3", None)
    w3 = weights(tmp_path / "run3" / "last.pt")
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


@pytest.mark.slow
def test_resume_is_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = make_dataset(tmp_path / "data", n_val_volumes=1)
    cfg = quick(epochs=3)  # auto selection: best validation epoch
    full = tmp_path / "full"
    train(cfg, MODEL, manifest, full, None)

    # The same run, killed in epoch 2 (2 steps per epoch: the 4th loss), then restarted.
    part, live = tmp_path / "part", tmp_path / "live"
    with monkeypatch.context() as m:
        _interrupt_at_call(m, 4, _Interrupted("killed"))
        with pytest.raises(_Interrupted):
            train(cfg, MODEL, manifest, part, live)
    assert load_checkpoint(part / "last.pt")["epoch"] == 1
    assert not (part / "train.json").exists()
    caplog.set_level(logging.INFO, logger="mtunet.training")
    # num_workers does not change results, so it may differ on restart.
    res = train(dataclasses.replace(cfg, num_workers=1), MODEL, manifest, part, live)
    assert res["resumed_from_epoch"] == 1
    assert "resuming from" in caplog.text
    assert_same_weights(weights(full / "last.pt"), weights(part / "last.pt"))
    assert_same_weights(weights(full / "model.pt"), weights(part / "model.pt"))
    full_opt = load_checkpoint(full / "last.pt")["optimizer"]["state"]
    part_opt = load_checkpoint(part / "last.pt")["optimizer"]["state"]
    assert all(torch.equal(full_opt[i]["exp_avg_sq"], part_opt[i]["exp_avg_sq"]) for i in full_opt)
    full_json = json.loads((full / "train.json").read_text())
    assert res["selection"] == full_json["selection"]
    assert res["selection"]["rule"] == "best_val"
    assert [h["val_dice"] for h in res["history"]] == [h["val_dice"] for h in full_json["history"]]
    # The DVCLive history continues without the steps of the killed epoch twice.
    rows = (live / "plots/metrics/train/loss.tsv").read_text().splitlines()
    col = rows[0].split("\t").index("step")
    steps = [r.split("\t")[col] for r in rows[1:]]
    assert steps == [str(s) for s in range(1, 7)]

    # A finished run is never resumed (DVC reruns it after a code change): it trains afresh.
    caplog.clear()
    again = train(cfg, MODEL, manifest, full, None)
    assert again["resumed_from_epoch"] is None and "finished run" in caplog.text
    assert again["epochs_completed"] == 3

    # Different params: no silent resume, a warning and a fresh run.
    caplog.clear()
    res2 = train(dataclasses.replace(cfg, lr=5e-4, epochs=4), MODEL, manifest, part, None)
    assert res2["resumed_from_epoch"] is None
    assert "different parameters" in caplog.text and "train.lr" in caplog.text


@pytest.mark.slow
def test_sparse_checkpoints_resume_from_the_last_written_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_dataset(tmp_path / "data", n_val_volumes=0)
    cfg = quick(epochs=4, checkpoint_every=2)
    full = tmp_path / "full"
    train(cfg, MODEL, manifest, full, None)
    assert load_checkpoint(full / "last.pt")["epoch"] == 4

    # Killed in epoch 4 (2 steps per epoch: the 7th loss): epoch 3 ended but wrote nothing.
    part = tmp_path / "part"
    written: list[int] = []
    with monkeypatch.context() as m:
        import mtunet.training.loop as loop

        save = loop.save_checkpoint

        def record(path: Path, payload: dict[str, Any]) -> Path:
            written.append(payload["epoch"])
            return save(path, payload)

        m.setattr(loop, "save_checkpoint", record)
        _interrupt_at_call(m, 7, _Interrupted("killed"))
        with pytest.raises(_Interrupted):
            train(cfg, MODEL, manifest, part, None)
    assert written == [2]
    # checkpoint_every does not change results, so a restart may change it and still resume.
    res = train(dataclasses.replace(cfg, checkpoint_every=1), MODEL, manifest, part, None)
    assert res["resumed_from_epoch"] == 2
    assert_same_weights(weights(full / "model.pt"), weights(part / "model.pt"))
    assert_same_weights(weights(full / "last.pt"), weights(part / "last.pt"))


def test_non_finite_loss_stops_and_keeps_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_dataset(tmp_path / "data", n_val_volumes=0)
    out = tmp_path / "run"
    _interrupt_at_call(monkeypatch, 3, FloatingPointError())  # epoch 2, step 1
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at epoch 2, step 1/2"):
        train(quick(epochs=3), MODEL, manifest, out, None)
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert not (out / "train.json").exists()


def test_selection_rules_and_bad_input(tmp_path: Path) -> None:
    no_val = make_dataset(tmp_path / "noval", n_val_volumes=0)
    with pytest.raises(ValueError, match="selection: 'best_val' needs validation volumes"):
        train(quick(selection="best_val", epochs=1), MODEL, no_val, tmp_path / "a", None)
    with pytest.raises(FileNotFoundError):
        train(quick(epochs=1), MODEL, tmp_path / "missing", tmp_path / "c", None)


def test_selection_last_with_validation_split(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path / "data", n_train=4)
    res = train(
        quick(epochs=2, selection="last", img_size=[40, 40], max_steps_per_epoch=1),
        MODEL,
        manifest,
        tmp_path / "run",
        None,
    )
    assert res["selection"]["rule"] == "last" and res["selection"]["epoch"] == 2
    assert res["selection"]["val_dice"] == res["history"][-1]["val_dice"] is not None
    assert res["steps_per_epoch"] == 1
    ck = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ck["model_config"]["img_size"] == [40, 40] and ck["epoch"] == 2


def test_one_slice_last_batch_is_refused_up_front(tmp_path: Path) -> None:
    """5 slices in batches of 4 leave one slice; at 32 x 32 MT-UNet's bottleneck is 1 x 1."""
    manifest = make_dataset(tmp_path / "data", n_train=5, n_val_volumes=0, size=32)
    with pytest.raises(ValueError, match=r"batch_size/img_size: 5 training slices in batches of 4"):
        train(quick(epochs=1), MODEL, manifest, tmp_path / "run", None)
    assert not (tmp_path / "run" / "last.pt").exists()
    # A larger input leaves the deepest BatchNorm more than one value: the same data trains.
    res = train(quick(epochs=1, img_size=[64, 64]), MODEL, manifest, tmp_path / "run64", None)
    assert res["steps_per_epoch"] == 2 and res["history"][0]["loss"] > 0


def test_build_network_is_the_network_the_run_trains() -> None:
    from mtunet.model import MTUNet
    from mtunet.training.build import build_network

    torch.manual_seed(0)
    a = build_network(MODEL)
    torch.manual_seed(0)
    b = MTUNet(MODEL)
    assert type(a) is MTUNet
    assert_same_weights(a.state_dict(), b.state_dict())


def test_confusion_dice() -> None:
    # Rows ground truth, columns prediction; class 2 never occurs.
    confusion = np.array([[50, 2, 0], [4, 6, 0], [0, 0, 0]])
    got = confusion_dice(confusion, ["bg", "a", "b"])
    assert got == {"a": pytest.approx(2 * 6 / (8 + 10)), "b": None}


@pytest.mark.slow
def test_cpu_levers_keep_runs_identical(tmp_path: Path) -> None:
    """Channels-last memory and the fused optimizer: same params, same weights, run after run."""
    manifest = make_dataset(tmp_path / "data", n_val_volumes=0)
    cfg = quick(channels_last=True, fused_optimizer=True)
    train(cfg, MODEL, manifest, tmp_path / "a", None)
    train(cfg, MODEL, manifest, tmp_path / "b", None)
    wa = weights(tmp_path / "a" / "last.pt")
    assert_same_weights(wa, weights(tmp_path / "b" / "last.pt"))
    # The levers are real: the plain path rounds differently.
    train(quick(), MODEL, manifest, tmp_path / "plain", None)
    wp = weights(tmp_path / "plain" / "last.pt")
    assert any(not torch.equal(wa[k], wp[k]) for k in wa)
    # Checkpoints are written contiguous, whatever the training memory format.
    assert all(v.is_contiguous() for v in wa.values())


def test_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path / "data", n_val_volumes=0, n_train=4)
    res = train(quick(epochs=1, bf16=True), MODEL, manifest, tmp_path / "run", None)
    assert res["bf16"] is True and res["device"] == "cpu"
    assert math.isfinite(res["history"][0]["loss"])
    assert res["machine"]["aten_capability"] == torch.backends.cpu.get_cpu_capability()
