"""MT-UNet network: config, layers, attention and the network."""

from __future__ import annotations

from mtunet.model.config import MTUNetConfig
from mtunet.model.network import MTUNet
from mtunet.model.official import load_official_state_dict

__all__ = ["MTUNet", "MTUNetConfig", "load_official_state_dict"]
