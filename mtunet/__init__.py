"""MT-UNet: Mixed Transformer U-Net for medical image segmentation, as a reproducible study."""

from __future__ import annotations

__version__ = "0.1.0"
