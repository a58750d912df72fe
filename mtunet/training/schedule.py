"""The learning-rate schedule of the published training loops (poly decay)."""

from __future__ import annotations


def poly_lr(base_lr: float, step: int, max_steps: int, power: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based), exactly as the published loop.

    TransUNet's and MT-UNet's loops set ``base * (1 - k/max) ** power`` right *after* step
    ``k``, so steps 0 and 1 both run at ``base_lr`` and step ``k >= 1`` at the value for
    ``k - 1``; the last step runs at a small positive rate.
    """
    return base_lr * (1.0 - max(step - 1, 0) / max_steps) ** power
