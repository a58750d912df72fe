"""DVCLive logs of a training run: opening (and truncating on resume), steps and epochs.

DVCLive's ``step`` is the number of optimizer steps taken. Per step: ``train/loss`` and
``train/lr``; per epoch: ``train/epoch_loss``, ``train/dice/<class>``, ``train/epoch`` and
``val/dice`` when the epoch was validated. Only rank 0 logs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from mtunet.training.spec import RunSpec


def truncate_live_history(live_dir: Path, max_step: int) -> None:
    """Drop DVCLive metric rows logged after ``max_step`` (steps redone after a resume)."""
    metrics_dir = live_dir / "plots" / "metrics"
    if not metrics_dir.is_dir():
        return
    for tsv in metrics_dir.rglob("*.tsv"):
        lines = tsv.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        header = lines[0].split("\t")
        if "step" not in header:
            continue
        col = header.index("step")
        kept = [lines[0]]
        for line in lines[1:]:
            fields = line.split("\t")
            with contextlib.suppress(ValueError, IndexError):
                if int(fields[col]) <= max_step:
                    kept.append(line)
        tsv.write_text("\n".join(kept) + "\n", encoding="utf-8")


def open_live(spec: RunSpec, resumed: bool, global_step: int) -> Any:
    """A DVCLive logger in ``spec.live_dir`` with the run's params (None without a folder).

    A resumed run continues the earlier curves, cut back to ``global_step``.
    """
    if spec.live_dir is None:
        return None
    from dvclive import Live

    if resumed:
        truncate_live_history(spec.live_dir, global_step)
    live = Live(
        dir=str(spec.live_dir),
        resume=resumed,
        dvcyaml=False,
        save_dvc_exp=False,
        report=None,
    )
    live.log_params(
        {
            "train": spec.cfg.to_dict(),
            "model": {"name": spec.model.name, **spec.model_cfg.to_dict()},
            "data": {k: v for k, v in spec.data_info.items() if k != "splits_sha256"},
            "world_size": spec.info.world_size,
            "selection_rule": spec.rule,
        }
    )
    return live


def log_step(live: Any, global_step: int, loss: float, lr: float) -> None:
    """One optimizer step's loss and learning rate."""
    live.step = global_step
    live.log_metric("train/loss", loss)
    live.log_metric("train/lr", lr)


def log_epoch(live: Any, global_step: int, record: dict[str, Any]) -> None:
    """One epoch's record (see :class:`~mtunet.training.loop.Trainer`), and the summary."""
    live.step = global_step
    live.log_metric("train/epoch_loss", record["loss"])
    for name, value in record["train_dice"].items():
        if value is not None:
            live.log_metric(f"train/dice/{name}", value)
    live.log_metric("train/epoch", record["epoch"])
    if record["val_dice"] is not None:
        live.log_metric("val/dice", record["val_dice"])
    live.make_summary()
