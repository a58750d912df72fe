"""What one training process runs: resolved configs, datasets, selection rule, data record.

:class:`RunSpec` reads the manifest and resolves everything that is fixed before the first
computation: the preset-filled :class:`~mtunet.training.config.TrainConfig`, the model config
with the dataset's classes and channels, the training and validation datasets, the
model-selection rule, autocast and memory format, and the ``data`` record stored in
checkpoints and ``train.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtunet import distributed as mdist
from mtunet.training.config import TrainConfig
from mtunet.training.validation import selection_rule

logger = logging.getLogger(__name__)


def splits_digest(splits: Mapping[str, Any]) -> str:
    """SHA-256 of a manifest's splits: a different dataset is a different run."""
    text = json.dumps(splits, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RunSpec:
    """One process's run, resolved from its configs and the dataset.

    Attributes:
        info: This process's rank and the process count.
        device: The device it trains on.
        cfg: The training config with the preset filled in.
        model: The network to build (:class:`~mtunet.model.registry.ModelSpec`) with the
            dataset's ``num_classes`` and ``in_channels`` (and ``train.img_size`` when set).
        model_cfg: ``model.config``: the shared settings every model reads.
        img_size: The training input (height, width).
        local_batch: Images per step on this process (the global batch / process count).
        train_set: The training slices (``SliceDataset``).
        val_set: The validation volumes (``VolumeDataset``), or None.
        rule: The selection rule, ``"best_val"`` or ``"last"``.
        amp_dtype: The autocast dtype, or None for float32.
        memory_format: Memory format of the network and its input.
        data_info: The dataset record of checkpoints and ``train.json``.
    """

    def __init__(
        self,
        info: mdist.DistInfo,
        device: torch.device,
        train_cfg: TrainConfig,
        model_cfg: Any,
        manifest_path: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        live_dir: str | os.PathLike[str] | None,
    ) -> None:
        from mtunet.data import SliceDataset, VolumeDataset, load_manifest
        from mtunet.model import MTUNetConfig
        from mtunet.model.registry import ModelSpec

        if isinstance(model_cfg, MTUNetConfig):
            model_cfg = ModelSpec("mtunet", {}, model_cfg)
        if not isinstance(model_cfg, ModelSpec):
            raise ValueError(
                f"model_cfg: expected a ModelSpec or an MTUNetConfig, got {type(model_cfg).__name__}"
            )
        model_spec = model_cfg
        model_cfg = model_spec.config
        self.info = info
        self.device = device
        self.cfg = train_cfg.resolved()
        self.manifest_path = Path(manifest_path)
        self.out_dir = Path(out_dir)
        self.live_dir = Path(live_dir) if live_dir is not None else None
        self.manifest = manifest = load_manifest(manifest_path)

        raw = getattr(manifest, "raw", None) or {}
        in_channels = int(raw.get("in_channels", 1)) if isinstance(raw, Mapping) else 1
        overrides: dict[str, Any] = {
            "num_classes": int(manifest.num_classes),
            "in_channels": in_channels,
        }
        if self.cfg.img_size is not None:
            overrides["img_size"] = tuple(self.cfg.img_size)
        changed = {
            k: (getattr(model_cfg, k), v)
            for k, v in overrides.items()
            if getattr(model_cfg, k) != v
        }
        if changed and info.is_main:
            logger.info("model config taken from the dataset/train config: %s", changed)
        self.model_cfg = dataclasses.replace(model_cfg, **overrides)
        self.model = dataclasses.replace(model_spec, config=self.model_cfg)
        self.img_size: tuple[int, int] = tuple(self.model_cfg.img_size)  # type: ignore[assignment]

        cfg = self.cfg
        assert cfg.batch_size is not None and cfg.epochs is not None and cfg.lr is not None
        if cfg.batch_size % info.world_size != 0:
            raise ValueError(
                f"batch_size: the global batch {cfg.batch_size} must be divisible by the "
                f"{info.world_size} processes"
            )
        self.local_batch = cfg.batch_size // info.world_size

        self.train_set = SliceDataset(
            manifest, "train", self.img_size, augment=cfg.augment, seed=cfg.seed
        )
        if len(self.train_set) == 0:
            raise ValueError(f"{self.manifest_path}: the train split has no slices")
        val_volumes = manifest.splits.get("val", {}).get("volumes", []) if manifest.splits else []
        self.val_set = VolumeDataset(manifest, "val") if val_volumes else None
        self.rule = selection_rule(cfg.selection, self.val_set is not None, self.manifest_path)
        self.amp_dtype = torch.bfloat16 if (cfg.bf16 and device.type in ("cuda", "cpu")) else None
        if cfg.bf16 and self.amp_dtype is None and info.is_main:
            logger.warning(
                "train.bf16: autocast is used on CUDA and CPU only; training in float32 on %s",
                device,
            )
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

        self.data_info = {
            "dataset": manifest.name,
            "num_classes": int(manifest.num_classes),
            "class_names": list(manifest.class_names),
            "in_channels": in_channels,
            "modality": manifest.modality,
            "preprocessing": dict(manifest.preprocessing),
            # How volumes were oriented, so `mtunet predict` reads a new scan the same way.
            "orientation": (manifest.raw.get("source_info") or {}).get("orientation"),
            "img_size": list(self.img_size),
            "n_train_slices": len(self.train_set),
            "n_val_volumes": len(self.val_set) if self.val_set is not None else 0,
            "splits_sha256": splits_digest(manifest.splits),
        }

    def expected(self) -> dict[str, Any]:
        """The run as a checkpoint records it, for :func:`~mtunet.training.state.find_resume`."""
        return {
            "train_config": self.cfg.to_dict(),
            "model_config": self.model_cfg.to_dict(),
            "model_name": self.model.name,
            "model_kwargs": dict(self.model.kwargs),
            "data": self.data_info,
            "world_size": self.info.world_size,
        }
