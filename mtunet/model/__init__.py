"""MT-UNet network: config, layers, attention and the network."""

from __future__ import annotations

from mtunet.model.config import MTUNetConfig

__all__ = ["MTUNetConfig"]
