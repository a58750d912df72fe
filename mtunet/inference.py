"""Prediction of whole volumes and segmentation of new NIfTI scans.

The published protocol (TransUNet's ``test_single_volume``, reused by MT-UNet) predicts a
test volume slice by slice: resize the slice to the network's input size with a cubic
spline (``scipy.ndimage.zoom``, order 3), take the argmax of the logits, resize the label
map back with nearest neighbour (order 0). :func:`predict_volume` computes exactly that,
but feeds the network batches of slices instead of one slice at a time. Test-set evaluation
with that protocol is :mod:`mtunet.evaluation`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from tqdm.auto import tqdm

from mtunet.config import check

# Preprocessing and class count of the authors' released checkpoints, which carry no metadata.
OFFICIAL_DATASETS: dict[str, dict[str, Any]] = {
    "synapse": {
        "num_classes": 9,
        "preprocessing": {"kind": "ct_window", "hu_min": -125.0, "hu_max": 275.0},
    },
    "acdc": {"num_classes": 4, "preprocessing": {"kind": "minmax"}},
}
# How each dataset's preprocessing orders a NIfTI's voxels into (Z, H, W) (mtunet.data.nifti):
# CT is reoriented to the closest canonical axes, oblique short-axis MR keeps its voxel order.
ORIENTATIONS: dict[str, str] = {"synapse": "canonical", "acdc": "voxel"}

#: The device names :func:`resolve_device` accepts.
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


# --------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    Args:
        name: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"mps"``, ``"cuda"`` or
            ``"cuda:N"``.

    Raises:
        ValueError: For an unknown name or a device that is not available here.
    """
    if not isinstance(name, str) or not DEVICE_RE.match(name):
        raise ValueError(f"device: expected 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device: {name!r} requested but MPS is not available")
    return device


# --------------------------------------------------------------------------------------
# Volume prediction
# --------------------------------------------------------------------------------------


def _as_size(img_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(img_size, (int, np.integer)) and not isinstance(img_size, bool):
        size = (int(img_size), int(img_size))
    else:
        size = tuple(int(s) for s in img_size)  # type: ignore[union-attr]
    check(
        len(size) == 2 and all(s >= 1 for s in size),
        "img_size",
        f"expected a positive int or (height, width), got {img_size!r}",
    )
    return size  # type: ignore[return-value]


def _zoom_to(array: np.ndarray, size: tuple[int, int], order: int) -> np.ndarray:
    """Resize a 2-D array to ``size`` with ``scipy.ndimage.zoom`` as the published code does.

    Like TransUNet's ``test_single_volume`` the array is left untouched when it already has
    the target size (a factor-1 cubic zoom is not bit-exact identity).
    """
    h, w = array.shape
    if (h, w) == size:
        return array
    out = ndimage.zoom(array, (size[0] / h, size[1] / w), order=order)
    # zoom rounds each output dim; the factors above make it land on ``size`` exactly.
    if out.shape != size:  # pragma: no cover - defensive, float rounding never hit so far
        raise RuntimeError(f"zoom produced {out.shape}, expected {size}")
    return out


def _model_in_channels(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "in_channels", None)


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    for b in model.buffers():
        return b.device, b.dtype
    return torch.device("cpu"), torch.float32


@torch.no_grad()
def predict_volume(
    model: nn.Module,
    image: np.ndarray,
    img_size: int | Sequence[int],
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Segment a volume slice by slice, feeding the network batches of slices.

    Each axial slice is resized to ``img_size`` (cubic spline, order 3), a batch of slices
    goes through the network on the model's device, the argmax over classes is taken and
    the label map is resized back to the slice's size (nearest neighbour, order 0). Slices
    are independent, so the result does not depend on ``batch_size``.

    Args:
        model: Any module mapping (B, C, h, w) float images to (B, K, h, w) logits. It is
            run in eval mode (its training flag is restored afterwards). C is 1, the
            volume's only channel; a model whose ``config.in_channels`` is not 1 is refused.
        image: float (Z, H, W) volume, already normalised (e.g. to [0, 1]).
        img_size: Network input (h, w), or an int for a square input.
        batch_size: Slices per forward pass (>= 1).
        amp_dtype: Autocast dtype (e.g. ``torch.bfloat16``) or None for full precision.
            The caller decides on which devices to use it.
        progress: Show a tqdm bar over the batches.

    Returns:
        uint8 (Z, H, W) label map (class ids, argmax of the logits).

    Raises:
        ValueError: For a volume that is not 3-D or not finite, a bad ``img_size`` or
            ``batch_size``, or a model that expects more than one input channel.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: expected a (Z, H, W) volume, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise ValueError(f"image: expected real numbers, got dtype {image.dtype}")
    if image.size and not np.isfinite(image).all():
        raise ValueError("image: contains NaN or infinite values")
    size = _as_size(img_size)
    check(
        isinstance(batch_size, int) and batch_size >= 1,
        "batch_size",
        f"must be >= 1, got {batch_size}",
    )
    in_channels = _model_in_channels(model)
    if in_channels is not None and in_channels != 1:
        raise ValueError(
            f"model: expects in_channels={in_channels}, but volumes have a single channel"
        )
    # The published code zooms float32 slices (the h5 volumes are float32).
    image = image.astype(np.float32, copy=False)
    z, h, w = image.shape
    out = np.zeros((z, h, w), dtype=np.uint8)
    device, dtype = _model_device_dtype(model)
    was_training = model.training
    model.eval()
    try:
        starts = range(0, z, batch_size)
        for start in tqdm(starts, desc="slices", unit="batch", disable=not progress):
            stop = min(start + batch_size, z)
            batch = np.stack([_zoom_to(image[i], size, order=3) for i in range(start, stop)])
            x = torch.from_numpy(batch).unsqueeze(1).to(device=device, dtype=dtype)
            autocast = (
                torch.autocast(device_type=device.type, dtype=amp_dtype)
                if amp_dtype is not None
                else contextlib.nullcontext()
            )
            with autocast:
                logits = model(x)
            if logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[2:] != x.shape[2:]:
                raise ValueError(
                    f"model: expected logits of shape (B, K, {size[0]}, {size[1]}) for input "
                    f"{tuple(x.shape)}, got {tuple(logits.shape)}"
                )
            if logits.shape[1] > 256:
                raise ValueError(f"model: {logits.shape[1]} classes do not fit a uint8 label map")
            labels = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
            for j, i in enumerate(range(start, stop)):
                out[i] = _zoom_to(labels[j], (h, w), order=0)
    finally:
        model.train(was_training)
    return out


def input_size(model: nn.Module, ckpt: Mapping[str, Any]) -> tuple[int, int]:
    """The slice size the network was trained at: the checkpoint's ``data.img_size``, else
    the size the model's position embedding was built for."""
    size = (ckpt.get("data") or {}).get("img_size") or model.config.img_size
    return _as_size(size)


# --------------------------------------------------------------------------------------
# Segmenting a new scan
# --------------------------------------------------------------------------------------


def _load_weights_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc


def predict_file(
    checkpoint_path: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    batch_size: int = 16,
    device: str = "auto",
    progress: bool = True,
    dataset: str | None = None,
    bf16: bool = False,
) -> Path:
    """Segment a NIfTI scan and write the label map in the input's geometry.

    Args:
        checkpoint_path: An mtunet checkpoint, or one of the authors' released weight files
            (a bare state_dict of the official network; then ``dataset`` is required).
        input_path: Scan to segment (``.nii`` / ``.nii.gz``): CT in Hounsfield units for a
            Synapse model, MR for an ACDC model.
        output_path: Label map to write (NIfTI, uint8, the input's shape and affine).
        batch_size: Slices per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        progress: Show a progress bar.
        dataset: ``"synapse"`` or ``"acdc"``: classes and preprocessing of an official
            checkpoint. For an mtunet checkpoint it must match the recorded dataset if given.
        bf16: bfloat16 autocast on CUDA.

    Returns:
        ``output_path`` as a Path.

    Raises:
        FileNotFoundError: Missing checkpoint or input.
        ValueError: Corrupt checkpoint, unknown ``dataset``, or an official checkpoint
            without ``dataset``.
    """
    from mtunet.checkpoint import model_from_checkpoint
    from mtunet.data import nifti, normalize

    checkpoint_path, input_path, output_path = (
        Path(checkpoint_path),
        Path(input_path),
        Path(output_path),
    )
    if dataset is not None and dataset not in OFFICIAL_DATASETS:
        raise ValueError(f"dataset: must be one of {sorted(OFFICIAL_DATASETS)}, got {dataset!r}")
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: input scan not found")
    if not nifti.is_nifti(output_path):
        raise ValueError(f"{output_path}: the output must be a NIfTI name (.nii or .nii.gz)")
    dev = resolve_device(device)
    obj = _load_weights_file(checkpoint_path)
    if isinstance(obj, Mapping) and obj.get("format") == "mtunet-checkpoint":
        try:
            model, ckpt = model_from_checkpoint(dict(obj), map_location="cpu")
        except ValueError as exc:
            raise ValueError(f"{checkpoint_path}: {exc}") from exc
        data = ckpt.get("data", {}) or {}
        if dataset is not None and data.get("dataset") not in (None, dataset):
            raise ValueError(
                f"{checkpoint_path}: trained on {data.get('dataset')!r}, but dataset={dataset!r}"
            )
        preprocessing = data.get("preprocessing")
        if preprocessing is None:
            raise ValueError(f"{checkpoint_path}: the checkpoint records no preprocessing")
        name = data.get("dataset") or dataset
        orientation = data.get("orientation") or ORIENTATIONS.get(
            str(name), "voxel" if data.get("modality") == "MR" else "canonical"
        )
    elif isinstance(obj, Mapping):
        if dataset is None:
            raise ValueError(
                f"{checkpoint_path}: not an mtunet checkpoint; for the authors' released "
                "weights pass dataset='synapse' or 'acdc'"
            )
        from mtunet.model import MTUNet, MTUNetConfig, load_official_state_dict

        spec = OFFICIAL_DATASETS[dataset]
        model = MTUNet(MTUNetConfig(num_classes=spec["num_classes"]))
        try:
            load_official_state_dict(model, dict(obj))
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ValueError(
                f"{checkpoint_path}: not an mtunet checkpoint, and not the authors' "
                f"{dataset} weights ({exc})"
            ) from exc
        model.eval()
        preprocessing = spec["preprocessing"]
        orientation = ORIENTATIONS[dataset]
        ckpt = {}
    else:
        raise ValueError(
            f"{checkpoint_path}: expected an mtunet checkpoint or a state_dict, got "
            f"{type(obj).__name__}"
        )

    model.to(dev).eval()
    volume = nifti.read_volume(input_path, orientation=orientation)  # type: ignore[arg-type]
    try:
        image = normalize(volume.image, preprocessing)
    except ValueError as exc:  # e.g. NaN voxels: say which scan
        raise ValueError(f"{input_path}: {exc}") from exc
    amp_dtype = torch.bfloat16 if (bf16 and dev.type == "cuda") else None
    pred = predict_volume(
        model,
        image,
        input_size(model, ckpt),
        batch_size,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    nifti.write_like(volume, pred, output_path, dtype=np.uint8)
    return output_path


__all__ = [
    "OFFICIAL_DATASETS",
    "input_size",
    "predict_file",
    "predict_volume",
    "resolve_device",
]
