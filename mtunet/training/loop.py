"""The training loop of one process: epochs of optimizer steps, validation, checkpoints.

:class:`Trainer` builds the run (:func:`mtunet.training.build.build`), restores the progress
of a resumed ``last.pt``, trains epoch after epoch (writing ``last.pt`` every
``checkpoint_every`` epochs and after the last) and
finally writes ``model.pt`` (the selected weights) and ``train.json``. Only rank 0 logs and
writes files.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import torch

from mtunet.checkpoint import save_checkpoint
from mtunet.fileio import write_json
from mtunet.numerics import default_threads, kernel_record
from mtunet.training.build import Components, build
from mtunet.training.config import available_cpus
from mtunet.training.epoch import train_epoch
from mtunet.training.live import log_epoch, open_live
from mtunet.training.progress import Progress
from mtunet.training.schedule import poly_lr
from mtunet.training.spec import RunSpec
from mtunet.training.state import (
    checkpoint_payload,
    cpu_state_dict,
    gather_rng_states,
    restore_rng_states,
)
from mtunet.training.validation import (
    confusion_dice,
    is_new_best,
    selected_weights,
    selection_record,
    validation_dice,
)

logger = logging.getLogger(__name__)


class Trainer:
    """One process's training run (all its state in one place for checkpointing)."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec

    def _start(self) -> None:
        """Build the components and restore a resumed run's optimizer, progress and RNG."""
        spec = self.spec
        self.parts, ck = build(spec)
        self.progress = Progress()
        if ck is not None:
            self.parts.optimizer.load_state_dict(ck["optimizer"])
            self.progress = Progress.from_checkpoint(ck)
            restore_rng_states(ck["rng"], spec.info.rank, spec.device)
            if spec.info.is_main:
                logger.info(
                    "resuming from %s at epoch %d",
                    spec.out_dir / "last.pt",
                    self.progress.start_epoch,
                )

    def run(self) -> dict[str, Any]:
        """Train every remaining epoch; returns the contents of ``train.json``."""
        self._start()
        spec, cfg, progress = self.spec, self.spec.cfg, self.progress
        is_main = spec.info.is_main
        if is_main and progress.resumed_from is None:
            # A fresh run: stale outputs of another run must not survive it.
            for name in ("model.pt", "train.json"):
                (spec.out_dir / name).unlink(missing_ok=True)
        live = (
            open_live(spec, progress.resumed_from is not None, progress.global_step)
            if is_main
            else None
        )
        bar = None
        if is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.parts.max_steps,
                initial=progress.global_step,
                desc=f"train {spec.manifest.name}",
                unit="step",
                dynamic_ncols=True,
            )
        t_start = time.perf_counter()
        images_seen = 0
        train_seconds = 0.0
        try:
            for epoch in range(progress.start_epoch, cfg.epochs):  # type: ignore[arg-type]
                t_epoch = time.perf_counter()
                epoch_loss, n_images, confusion = train_epoch(
                    spec, self.parts, progress, epoch, live, bar
                )
                seconds = time.perf_counter() - t_epoch
                train_seconds += seconds
                images_seen += n_images
                self._end_epoch(epoch, epoch_loss, seconds, confusion, live)
        finally:
            if bar is not None:
                bar.close()
            if live is not None:
                live.end()
        total_seconds = time.perf_counter() - t_start
        return self._finish(total_seconds, train_seconds, images_seen)

    def _end_epoch(
        self, epoch: int, epoch_loss: float, seconds: float, confusion: np.ndarray, live: Any
    ) -> None:
        """Validate, update the selection, log the epoch and write ``last.pt`` when due."""
        spec, cfg, progress = self.spec, self.spec.cfg, self.progress
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": epoch_loss,
            "lr_last": poly_lr(
                cfg.lr, progress.global_step - 1, self.parts.max_steps, cfg.poly_power
            ),  # type: ignore[arg-type]
            "train_seconds": seconds,
            "train_dice": confusion_dice(confusion, spec.manifest.class_names),
            "val_dice": None,
        }
        last_epoch = epoch + 1 == cfg.epochs
        if spec.val_set is not None and ((epoch + 1) % cfg.val_every == 0 or last_epoch):
            record["val_dice"] = validation_dice(
                self.parts.raw_model,
                spec.val_set,
                spec.model_cfg.num_classes,
                spec.img_size,
                cfg.val_batch_size,
                spec.amp_dtype,
            )
            self.parts.raw_model.train()
        progress.history.append(record)
        if is_new_best(spec.rule, record["val_dice"], progress.best_dice):
            progress.best_epoch, progress.best_dice = epoch + 1, record["val_dice"]
            progress.best_state = cpu_state_dict(self.parts.raw_model)
        # Decided by the epoch alone, so every process takes part in the RNG gather.
        checkpoint = (epoch + 1) % cfg.checkpoint_every == 0 or last_epoch
        rng = gather_rng_states(spec.device) if checkpoint else None
        if spec.info.is_main:
            if live is not None:
                log_epoch(live, progress.global_step, record)
            if checkpoint:
                save_checkpoint(spec.out_dir / "last.pt", self._payload(epoch + 1, True, rng))
        if spec.info.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _payload(
        self,
        epoch: int,
        full: bool,
        rng: dict[str, Any] | None,
        state: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """A checkpoint dict: ``full`` for last.pt (optimizer, RNG, best weights); ``state``
        the weights of model.pt's selected epoch, or None for the current ones."""
        return checkpoint_payload(
            self.spec,
            self.progress,
            self.parts.optimizer,
            epoch=epoch,
            full=full,
            rng=rng,
            model=state if state is not None else cpu_state_dict(self.parts.raw_model),
            # model.pt of the best epoch: the steps taken up to that epoch.
            global_step=self.progress.global_step
            if state is None
            else epoch * self.parts.steps_per_epoch,
            selection=selection_record(self.spec.rule, self.progress, epoch),
        )

    def _finish(
        self, total_seconds: float, train_seconds: float, images_seen: int
    ) -> dict[str, Any]:
        """Write ``model.pt`` (the selected weights) and ``train.json``; return the latter."""
        spec = self.spec
        epochs = int(spec.cfg.epochs)  # type: ignore[arg-type]
        selected_epoch, state = selected_weights(spec.rule, self.progress, epochs)
        if spec.info.is_main:
            save_checkpoint(
                spec.out_dir / "model.pt",
                self._payload(int(selected_epoch), False, None, state),  # type: ignore[arg-type]
            )
        result = _run_record(
            spec,
            self.parts,
            self.progress,
            selection_record(spec.rule, self.progress, epochs),
            selected_epoch,
            {
                "total_seconds": total_seconds,
                "train_seconds": train_seconds,
                "train_images_per_second": images_seen / train_seconds
                if train_seconds > 0
                else None,
                "epochs_this_run": epochs - (self.progress.resumed_from or 0),
            },
        )
        if spec.info.is_main:
            write_json(spec.out_dir / "train.json", result)
        return result


def _run_record(
    spec: RunSpec,
    parts: Components,
    progress: Progress,
    selection: dict[str, Any],
    selected_epoch: int | None,
    timings: dict[str, Any],
) -> dict[str, Any]:
    """The contents of ``train.json``."""
    cfg, info = spec.cfg, spec.info
    from mtunet.model.registry import complexity

    return {
        "model_config": spec.model_cfg.to_dict(),
        "model_name": spec.model.name,
        "model_kwargs": dict(spec.model.kwargs),
        # Parameters and forward GFLOPs of one image at the training input size.
        "complexity": complexity(parts.raw_model, spec.model_cfg.in_channels, spec.img_size),
        "train_config": cfg.to_dict(),
        "data": spec.data_info,
        "manifest": str(spec.manifest_path),
        "selection": selection,
        "selected_epoch": selected_epoch,
        "epochs_completed": int(cfg.epochs),  # type: ignore[arg-type]
        "global_step": progress.global_step,
        "steps_per_epoch": parts.steps_per_epoch,
        "max_steps": parts.max_steps,
        "world_size": info.world_size,
        "batch_size_per_process": spec.local_batch,
        "device": str(spec.device),
        "resources": _resources_record(spec, parts),
        "bf16": spec.amp_dtype is not None,
        "resumed_from_epoch": progress.resumed_from,
        "history": progress.history,
        "timings": timings,
        "torch_version": str(torch.__version__),
        "machine": kernel_record(),
        "final_epoch_loss": progress.history[-1]["loss"] if progress.history else None,
    }


def _resources_record(spec: RunSpec, parts: Components) -> dict[str, Any]:
    """What the run had: the GPUs it saw, its GPU's name, CPUs, threads and loader workers."""
    device = spec.device
    return {
        # Unset: every GPU of the machine was visible; "" : none was.
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpus": available_cpus(),
        "torch_threads": torch.get_num_threads(),
        # What the process was given before train.threads (the machine's cores, or the
        # launcher's OMP_NUM_THREADS): shows what a fixed count overrode.
        "torch_threads_default": default_threads(),
        "loader_workers": parts.loader.num_workers,
    }
