"""MT-UNet network: config, layers, attention and the network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mtunet.model.config import MTUNetConfig

if TYPE_CHECKING:
    from mtunet.model.network import MTUNet
    from mtunet.model.official import load_official_state_dict

#: Imported on first use: they need torch, which reading a study's plan (compare, report)
#: does not.
_LAZY = {"MTUNet": "mtunet.model.network", "load_official_state_dict": "mtunet.model.official"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MTUNet", "MTUNetConfig", "load_official_state_dict"]
