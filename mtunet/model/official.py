"""Loading the authors' released MT-UNet checkpoints into :class:`MTUNet`.

The parameter names of :class:`MTUNet` are exactly the authors' (487 entries for the 9-class
model), so loading is a strict ``load_state_dict`` after unwrapping common containers and
removing a ``module.`` prefix left by ``nn.DataParallel``; anything that does not match is
reported by :func:`mtunet.model.weights.fit_problems`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtunet.model.weights import fit_problems, listed


def _unwrap(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """Find the state dict in a loaded object: itself, or under ``state_dict``/``model``."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], where)
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{where}: not a state dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{where}: entries that are not tensors: {listed(bad)}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_official_state_dict(
    model: nn.Module, path_or_dict: str | os.PathLike[str] | Mapping[str, Any]
) -> nn.Module:
    """Load an official (authors') MT-UNet state dict into ``model``, strictly.

    Args:
        model: An :class:`~mtunet.model.MTUNet` whose config matches the checkpoint
            (9 classes, 224 x 224, width 1.0 for the released Synapse model).
        path_or_dict: A ``torch.save``-d file (loaded with ``weights_only=True`` on CPU) or
            an in-memory mapping. A plain state dict, or one under ``state_dict``/``model``;
            a ``module.`` prefix on every key (``nn.DataParallel``) is removed.

    Returns:
        ``model`` with the weights copied in (device and dtype of ``model`` kept).

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: The file is not a state dict, or keys are missing, unexpected or have
            another shape; the message counts each kind, shows the first few keys and names
            the likely cause (e.g. a different ``num_classes`` or ``width_mult``).
    """
    if isinstance(path_or_dict, Mapping):
        where = "state_dict"
        obj: Any = path_or_dict
    else:
        path = Path(path_or_dict)
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint file not found")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt file, pickle with non-tensor objects, ...
            raise ValueError(f"{path}: cannot be read as a PyTorch state dict ({exc})") from exc
    state = _unwrap(obj, where)

    config = getattr(model, "config", None)
    problems = fit_problems(model.state_dict(), state, getattr(config, "num_classes", None))
    if problems:
        raise ValueError(f"{where}: does not fit the model; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model
