"""How far a run has got: the part of ``last.pt`` besides weights, optimizer and RNG states.

Shared by the resume and checkpoint code (:mod:`~mtunet.training.state`) and the
model-selection rule (:mod:`~mtunet.training.validation`), which reads the best epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Progress:
    """How far a run has got: what ``last.pt`` carries besides weights, optimizer and RNG.

    Attributes:
        start_epoch: Epochs completed before this process started (0 for a fresh run).
        global_step: Optimizer steps taken.
        best_epoch: The best-validation epoch so far (1-based), or None.
        best_dice: Its mean foreground validation Dice, or None.
        best_state: CPU copy of the best-validation weights; also stored in ``last.pt``, so
            ``model.pt`` can be rebuilt after a resume even when DVC removed it before
            re-running the stage.
        history: One record per completed epoch.
        resumed_from: The epoch this process resumed at, or None for a fresh run.
    """

    start_epoch: int = 0
    global_step: int = 0
    best_epoch: int | None = None
    best_dice: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None

    @classmethod
    def from_checkpoint(cls, ck: Mapping[str, Any]) -> Progress:
        """The progress recorded in a ``last.pt`` payload."""
        start_epoch = int(ck["epoch"])
        best = ck.get("best") or {}
        return cls(
            start_epoch=start_epoch,
            global_step=int(ck["global_step"]),
            best_epoch=best.get("epoch"),
            best_dice=best.get("val_dice"),
            best_state=ck.get("best_model"),
            history=[dict(h) for h in ck.get("history", [])],
            resumed_from=start_epoch,
        )
