"""Compatibility module: training lives in the :mod:`mtunet.training` package.

``from mtunet.train import TrainConfig, train`` keeps working for scripts written against the
single-module layout; the package's modules hold the code (see :mod:`mtunet.training`).
"""

from __future__ import annotations

from mtunet.training import (
    PRESETS,
    RUNTIME_FIELDS,
    TrainConfig,
    confusion_dice,
    foreground_dice,
    poly_lr,
    train,
    validation_dice,
)

__all__ = [
    "PRESETS",
    "RUNTIME_FIELDS",
    "TrainConfig",
    "confusion_dice",
    "foreground_dice",
    "poly_lr",
    "train",
    "validation_dice",
]
