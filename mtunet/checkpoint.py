"""mtunet checkpoints: one self-describing format, atomic writes, safe loading.

A checkpoint is a dict of plain Python types and tensors, so that
``torch.load(..., weights_only=True)`` reads it without unpickling arbitrary objects::

    {"format": "mtunet-checkpoint", "version": 1,
     "model_config": MTUNetConfig.to_dict(), "train_config": resolved TrainConfig.to_dict(),
     "data": {"dataset", "num_classes", "class_names", "in_channels", "modality",
              "preprocessing", "img_size", ...},
     "epoch": completed epochs, "global_step": optimizer steps taken,
     "model": state_dict, "optimizer": state_dict or None,
     "rng": {"torch": [CPU RNG state per rank], "cuda": [CUDA RNG state per rank]} or None,
     "best_model": state_dict of the best validation epoch or None,
     "selection": {"rule": "last" | "best_val", "epoch": n, "val_dice": float | None},
     ...}

``last.pt`` (the resume state) carries the optimizer and RNG states (and the best
validation weights); ``model.pt`` (the selected weights, for inference) has
``"optimizer": None``, ``"rng": None`` and ``"best_model": None``.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mtunet.fileio import atomic_path

FORMAT = "mtunet-checkpoint"
VERSION = 1
#: Keys every checkpoint must have (``optimizer``/``rng`` may be None in ``model.pt``).
REQUIRED_KEYS = (
    "format",
    "version",
    "model_config",
    "train_config",
    "data",
    "epoch",
    "global_step",
    "model",
    "selection",
)


def _validate(payload: Mapping[str, Any], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` unless ``payload`` is an mtunet checkpoint."""
    if not isinstance(payload, Mapping):
        raise ValueError(
            f"{source}: not an mtunet checkpoint (expected a dict, got {type(payload).__name__})"
        )
    fmt = payload.get("format")
    if fmt != FORMAT:
        hint = ""
        if fmt is None and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = " (it looks like a bare state_dict, e.g. the authors' released weights)"
        raise ValueError(f"{source}: not an mtunet checkpoint (format {fmt!r}){hint}")
    version = payload.get("version")
    if not isinstance(version, int) or version < 1 or version > VERSION:
        raise ValueError(
            f"{source}: unsupported checkpoint version {version!r} (this code reads 1..{VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"{source}: checkpoint is missing key(s) {missing}")
    if not isinstance(payload["model"], Mapping):
        raise ValueError(f"{source}: checkpoint 'model' is not a state_dict")
    if not isinstance(payload["model_config"], Mapping):
        raise ValueError(f"{source}: checkpoint 'model_config' is not a dict")


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(obj: Any, where: str) -> None:
    """Raise ``ValueError`` naming the key of anything ``weights_only`` loading would refuse."""
    if type(obj) in _PLAIN or type(obj) in (torch.Tensor, torch.nn.Parameter):
        return
    if type(obj) in (dict, OrderedDict, list, tuple):
        is_dict = isinstance(obj, dict)
        for key, value in obj.items() if is_dict else enumerate(obj):
            if is_dict and type(key) not in (str, int):
                raise ValueError(f"{where}: dict key {key!r} is not a str or int")
            _check_plain(value, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where}: {type(obj).__name__} is not a plain type or tensor; weights_only loading "
        "would refuse the checkpoint"
    )


def canonical(obj: Any) -> Any:
    """``obj`` with every string interned and every dict, list and tuple rebuilt.

    Pickle shares an object it meets twice by identity, not by value, so the same checkpoint
    would be written with other bytes when some of its strings were read back from an earlier
    file (a resumed run's history) instead of being built in this process. With every equal
    string one object and no container shared, the bytes depend on the content only, and a
    resumed run's ``model.pt`` is the uninterrupted run's, byte for byte.
    """
    kind = type(obj)
    if kind is str:
        return sys.intern(obj)
    if kind in (dict, OrderedDict):
        return kind((canonical(k), canonical(v)) for k, v in obj.items())
    if kind in (list, tuple):
        return kind(canonical(v) for v in obj)
    return obj


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, then rename); the same
    content always gives the same bytes (:func:`canonical`).

    Args:
        path: Destination, e.g. ``models/synapse/last.pt``.
        payload: A checkpoint dict (see the module docstring); validated before writing.

    Returns:
        The path written.

    Raises:
        ValueError: When ``payload`` is not a valid checkpoint dict or holds objects other
            than plain Python types and tensors (``weights_only`` loading would fail).
    """
    target = Path(path)
    _validate(payload, str(target))
    _check_plain(dict(payload), str(target))
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        torch.save(canonical(dict(payload)), fh)
    return target


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read an mtunet checkpoint with ``weights_only=True``.

    Args:
        path: Checkpoint file.
        map_location: Where tensors are loaded (default CPU).

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is corrupt or truncated, not a PyTorch file, holds objects other
            than plain types and tensors, or is not an mtunet checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise ValueError(
            f"{p}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    _validate(payload, str(p))
    return payload


def check_data_compatible(
    ckpt: Mapping[str, Any],
    num_classes: int | None = None,
    in_channels: int | None = None,
    source: str = "checkpoint",
) -> None:
    """Refuse a checkpoint whose classes or input channels differ from the data's.

    Args:
        ckpt: A loaded checkpoint dict.
        num_classes: Classes of the data (including background), or None to skip.
        in_channels: Image channels of the data, or None to skip.
        source: Name for the error message (e.g. the checkpoint path).

    Raises:
        ValueError: Naming ``source``, the item and both values.
    """
    cfg = ckpt.get("model_config") or {}
    if num_classes is not None and cfg.get("num_classes") != num_classes:
        raise ValueError(
            f"{source}: the checkpoint predicts {cfg.get('num_classes')} classes but the data "
            f"has {num_classes}"
        )
    if in_channels is not None and cfg.get("in_channels") != in_channels:
        raise ValueError(
            f"{source}: the checkpoint expects in_channels={cfg.get('in_channels')} but the "
            f"data has {in_channels} channel(s)"
        )


def model_from_checkpoint(
    ckpt_or_path: Mapping[str, Any] | str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the network a checkpoint describes and load its weights.

    Args:
        ckpt_or_path: A checkpoint dict (from :func:`load_checkpoint`) or a file path.
        map_location: Device for the model (default CPU).

    Returns:
        ``(model, ckpt)``: the network the checkpoint names (``model_name``: MT-UNet for
        checkpoints without one, a baseline, or a user factory, which must be importable) in
        eval mode on ``map_location``, and the checkpoint dict. The model outputs logits
        (B, num_classes, H, W).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: Unreadable checkpoint, an invalid model config, or weights that do not
            fit the network the config describes (the first few keys of each kind of
            problem, their counts and the likely cause:
            :func:`mtunet.model.weights.fit_problems`).
    """
    from mtunet.model import MTUNetConfig
    from mtunet.model.registry import ModelSpec
    from mtunet.model.weights import fit_problems

    if isinstance(ckpt_or_path, Mapping):
        ckpt = dict(ckpt_or_path)
        source = "checkpoint"
        _validate(ckpt, source)
    else:
        source = str(ckpt_or_path)
        ckpt = load_checkpoint(ckpt_or_path, map_location="cpu")
    try:
        cfg = MTUNetConfig.from_dict(dict(ckpt["model_config"]), "model_config")
        spec = ModelSpec(
            str(ckpt.get("model_name", "mtunet")), dict(ckpt.get("model_kwargs") or {}), cfg
        )
    except ValueError as exc:
        raise ValueError(f"{source}: invalid model_config in checkpoint ({exc})") from exc
    try:
        model = spec.build()
    except ValueError as exc:
        raise ValueError(f"{source}: cannot rebuild the network ({exc})") from exc
    problems = fit_problems(model.state_dict(), ckpt["model"], cfg.num_classes)
    if problems:
        raise ValueError(
            f"{source}: the weights do not fit the network its model_config describes "
            f"({'; '.join(problems)})"
        )
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as exc:  # e.g. a value that is not a tensor
        raise ValueError(
            f"{source}: the weights do not fit the network its model_config describes ({exc})"
        ) from exc
    model.to(map_location)
    model.eval()
    return model, ckpt
