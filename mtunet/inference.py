"""Prediction of whole volumes, test-set evaluation and segmentation of new NIfTI scans.

The published protocol (TransUNet's ``test_single_volume``, reused by MT-UNet) predicts a
test volume slice by slice: resize the slice to the network's input size with a cubic
spline (``scipy.ndimage.zoom``, order 3), take the argmax of the logits, resize the label
map back with nearest neighbour (order 0). :func:`predict_volume` computes exactly that,
but feeds the network batches of slices instead of one slice at a time.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from tqdm.auto import tqdm

from mtunet.config import check, from_dict, to_dict
from mtunet.fileio import atomic_path, write_json

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

DATA_SOURCES = ("synthetic", "raw", "release")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


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
    if not isinstance(name, str) or not _DEVICE_RE.match(name):
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


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """Test-set evaluation settings (``params.yaml`` section ``evaluate``).

    Attributes:
        batch_size: Slices per forward pass (does not change the result).
        empty_policy: ``"published"`` scores an empty prediction (Dice 0, HD95 0) and a
            prediction where the ground truth is empty (Dice 1, HD95 0), as the published
            code does; ``"nan"`` leaves such classes out of the means.
        save_predictions: Also write each case's label map as NIfTI in the source geometry
            to ``out_dir/predictions/<case>.nii.gz``.
        bf16: bfloat16 autocast for the forward pass, used on CUDA only.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
            or ``"mps"``.
        num_qualitative: Cases shown in the qualitative figure (one slice each; 0 = none).
        split: Manifest split to evaluate (``"test"``, or ``"val"``).
        threshold_baseline: Also score the intensity-only baseline (each intensity bin
            gets one class, fitted on the training slices; of the two rules of
            :func:`mtunet.baseline.threshold_baseline_dice` the one that scores better on
            the validation cases, or the training cases without them): the bar a model that
            learnt shape and position must clear. Written as ``threshold_baseline``.
    """

    batch_size: int = 16
    empty_policy: Literal["published", "nan"] = "published"
    save_predictions: bool = False
    bf16: bool = False
    device: str = "auto"
    num_qualitative: int = 3
    split: Literal["test", "val"] = "test"
    threshold_baseline: bool = True

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(
            self.empty_policy in ("published", "nan"),
            "empty_policy",
            f"must be 'published' or 'nan', got {self.empty_policy!r}",
        )
        check(
            isinstance(self.device, str) and bool(_DEVICE_RE.match(self.device)),
            "device",
            f"expected 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {self.device!r}",
        )
        check(
            self.num_qualitative >= 0,
            "num_qualitative",
            f"must be >= 0, got {self.num_qualitative}",
        )
        check(
            self.split in ("test", "val"),
            "split",
            f"must be 'test' or 'val', got {self.split!r}",
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "evaluate") -> EvalConfig:
        """Build from a ``params.yaml`` section; unknown keys and wrong types raise."""
        return from_dict(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``from_dict`` inverts it."""
        return to_dict(self)


def check_compatible(
    ckpt: Mapping[str, Any],
    manifest: Any,
    checkpoint_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
) -> None:
    """Refuse a checkpoint whose classes, channels or preprocessing do not match the data.

    Args:
        ckpt: A loaded mtunet checkpoint payload.
        manifest: The dataset's ``Manifest``.
        checkpoint_path: For the error message.
        manifest_path: For the error message.

    Raises:
        ValueError: Naming both files and the mismatching item.
    """
    where = f"checkpoint {checkpoint_path} vs dataset {manifest_path}"
    model_cfg = ckpt.get("model_config", {}) or {}
    data = ckpt.get("data", {}) or {}
    n_ckpt = model_cfg.get("num_classes", data.get("num_classes"))
    if n_ckpt != manifest.num_classes:
        raise ValueError(
            f"{where}: the checkpoint predicts {n_ckpt} classes, the dataset has "
            f"{manifest.num_classes}"
        )
    in_ch = model_cfg.get("in_channels", data.get("in_channels"))
    if in_ch != 1:
        raise ValueError(
            f"{where}: the checkpoint expects in_channels={in_ch}, the dataset's volumes have "
            "a single channel"
        )
    names = data.get("class_names")
    if names is not None and list(names) != list(manifest.class_names):
        raise ValueError(
            f"{where}: class names differ: checkpoint {list(names)}, dataset "
            f"{list(manifest.class_names)}"
        )
    prep = data.get("preprocessing")
    if prep is not None and dict(prep) != dict(manifest.preprocessing):
        raise ValueError(
            f"{where}: preprocessing differs: checkpoint {dict(prep)}, dataset "
            f"{dict(manifest.preprocessing)}"
        )


def _is_phantom_dir(raw_dir: Path) -> bool:
    """True when ``raw_dir`` was written by ``mtunet.data.synthetic`` (it leaves
    ``phantoms.json`` next to the raw layout)."""
    return (raw_dir / "phantoms.json").is_file()


def _input_size(model: nn.Module, ckpt: Mapping[str, Any]) -> tuple[int, int]:
    """The slice size the network was trained at: the checkpoint's ``data.img_size``, else
    the size the model's position embedding was built for."""
    size = (ckpt.get("data") or {}).get("img_size") or model.config.img_size
    return _as_size(size)


def _data_source(manifest: Any) -> str:
    """Where the evaluated data came from: ``"synthetic"``, ``"raw"`` or ``"release"``.

    ``"synthetic"`` when the manifest's raw input folder holds generated phantoms, else the
    manifest's ``source`` field.
    """
    raw = getattr(manifest, "raw", None) or {}
    info = raw.get("source_info") or {}
    if raw.get("synthetic") is True or info.get("synthetic") is True:
        return "synthetic"
    input_dir = info.get("input_dir")
    if isinstance(input_dir, str) and _is_phantom_dir(Path(manifest.root) / input_dir):
        return "synthetic"
    return str(raw.get("source", "raw"))


def _qualitative_indices(n_cases: int, k: int) -> list[int]:
    """``k`` case indices spread evenly over the (ordered) case list, first and last included."""
    k = min(k, n_cases)
    if k <= 0:
        return []
    if k == 1:
        return [0]
    return sorted({round(i * (n_cases - 1) / (k - 1)) for i in range(k)})


def _pad_stack(arrays: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Stack 2-D arrays of possibly different sizes, zero-padding bottom and right."""
    if not arrays:
        return np.zeros((0, 0, 0), dtype=dtype)
    hh = max(a.shape[0] for a in arrays)
    ww = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), hh, ww), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out


def evaluate(
    checkpoint_path: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    cfg: EvalConfig,
    metrics_path: str | os.PathLike[str],
    per_case_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    data_source: str | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset split with the published protocol.

    Writes (each atomically): ``metrics_path`` (summary JSON, sorted keys),
    ``per_case_path`` (CSV: case, class_id, class_name, dice, hd95, hd95_mm, convention),
    ``out_dir/qualitative.npz`` (``image`` float32 (K, H, W), ``gt`` uint8 (K, H, W),
    ``pred`` uint8 (K, H, W), ``case`` (K,) str, ``slice`` (K,) int, ``shape`` (K, 2) int:
    each slice's true size, smaller slices being zero-padded at the bottom and right), and
    with ``cfg.save_predictions`` ``out_dir/predictions/<case>.nii.gz`` (label maps of an
    earlier run that this run did not write are removed from that folder).

    Args:
        checkpoint_path: An mtunet checkpoint (``mtunet.checkpoint`` format).
        manifest_path: ``dataset.json`` or its folder.
        cfg: Evaluation settings.
        metrics_path: Summary JSON to write.
        per_case_path: Per-case CSV to write.
        out_dir: Folder for the qualitative slices and NIfTI predictions.
        data_source: ``"synthetic"``, ``"raw"`` or ``"release"``; by default taken from the
            manifest (``"synthetic"`` when its raw data record phantoms).

    Returns:
        The summary dict written to ``metrics_path``.

    Raises:
        FileNotFoundError: Missing checkpoint or manifest.
        ValueError: Corrupt checkpoint, or a checkpoint that does not match the data.
    """
    import pandas as pd

    from mtunet.checkpoint import load_checkpoint, model_from_checkpoint
    from mtunet.data import VolumeDataset, load_manifest
    from mtunet.data.common import write_npz
    from mtunet.metrics import case_metrics, summarize

    if not isinstance(cfg, EvalConfig):
        raise ValueError(f"cfg: expected an EvalConfig, got {type(cfg).__name__}")
    if data_source is not None and data_source not in DATA_SOURCES:
        raise ValueError(f"data_source: must be one of {list(DATA_SOURCES)}, got {data_source!r}")
    ckpt = load_checkpoint(checkpoint_path, map_location="cpu")
    manifest = load_manifest(manifest_path)
    check_compatible(ckpt, manifest, checkpoint_path, manifest_path)
    device = resolve_device(cfg.device)
    try:
        model, ckpt = model_from_checkpoint(ckpt, map_location="cpu")
    except ValueError as exc:
        raise ValueError(f"{checkpoint_path}: {exc}") from exc
    model.to(device).eval()
    img_size = _input_size(model, ckpt)
    amp_dtype = torch.bfloat16 if (cfg.bf16 and device.type == "cuda") else None

    dataset = VolumeDataset(manifest, cfg.split)
    n_cases = len(dataset)
    if n_cases == 0:
        raise ValueError(f"{manifest_path}: split {cfg.split!r} has no volumes to evaluate")
    chosen = set(_qualitative_indices(n_cases, cfg.num_qualitative))
    class_names = list(manifest.class_names)
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    qual: dict[str, list[Any]] = {"image": [], "gt": [], "pred": [], "case": [], "slice": []}
    written: set[str] = set()
    for index in tqdm(range(n_cases), desc=f"evaluate {manifest.name}", unit="case"):
        item = dataset[index]
        case = str(item["case"])
        image, gt = item["image"], item["label"]
        pred = predict_volume(model, image, img_size, cfg.batch_size, amp_dtype=amp_dtype)
        spacing = item.get("spacing")
        if spacing is None:
            warnings.warn(
                f"{case} ({item.get('path', '?')}): the volume has no voxel spacing; HD95 in "
                "mm is omitted for this case",
                stacklevel=2,
            )
        for row in case_metrics(
            pred, gt, manifest.num_classes, spacing=spacing, empty_policy=cfg.empty_policy
        ):
            cid = int(row["class_id"])
            rows.append(
                {
                    "case": case,
                    "class_id": cid,
                    "class_name": class_names[cid],
                    "dice": row["dice"],
                    "hd95": row["hd95"],
                    "hd95_mm": row["hd95_mm"],
                    "convention": row["convention"],
                }
            )
        if index in chosen:
            # The slice with most ground-truth foreground (first one on ties).
            fg = (gt > 0).reshape(gt.shape[0], -1).sum(axis=1)
            s = int(np.argmax(fg))
            qual["image"].append(np.asarray(image[s], dtype=np.float32))
            qual["gt"].append(np.asarray(gt[s], dtype=np.uint8))
            qual["pred"].append(pred[s])
            qual["case"].append(case)
            qual["slice"].append(s)
        if cfg.save_predictions:
            target = out_dir / "predictions" / f"{case}.nii.gz"
            _save_prediction_nifti(item, pred, target)
            written.add(target.name)

    columns = ["case", "class_id", "class_name", "dice", "hd95", "hd95_mm", "convention"]
    per_case = pd.DataFrame(rows, columns=columns)
    per_case["hd95_mm"] = pd.to_numeric(per_case["hd95_mm"], errors="coerce")
    summary = summarize(
        per_case,
        class_names,
        empty_policy=cfg.empty_policy,
        model_selection=dict(ckpt.get("selection") or {}),
        data_source=data_source if data_source is not None else _data_source(manifest),
    )
    if cfg.threshold_baseline:
        summary["threshold_baseline"] = _threshold_baseline(manifest, cfg.split)

    with atomic_path(per_case_path) as tmp:
        per_case.to_csv(tmp, index=False)
    # Deterministic .npz (fixed zip dates), atomic: a rerun gives identical bytes.
    write_npz(
        out_dir / "qualitative.npz",
        {
            "image": _pad_stack(qual["image"], np.float32),
            "gt": _pad_stack(qual["gt"], np.uint8),
            "pred": _pad_stack(qual["pred"], np.uint8),
            "case": np.asarray(qual["case"], dtype=str),
            "slice": np.asarray(qual["slice"], dtype=np.int64),
            "shape": np.asarray([a.shape for a in qual["gt"]], dtype=np.int64).reshape(-1, 2),
        },
    )
    _remove_stale_predictions(out_dir / "predictions", written)
    write_json(metrics_path, summary)
    return summary


def _threshold_baseline(manifest: Any, split: str) -> dict[str, Any] | None:
    """Mean DSC (%) of the intensity-only rule on ``split`` (None: no training slices).

    The rule (``map`` or ``balanced``) is chosen on the validation or training cases, never
    on ``split``.
    """
    from mtunet.baseline import threshold_baseline_dice

    if not manifest.paths("train", "slices"):
        return None
    res = threshold_baseline_dice(manifest, rule="auto", split=split)
    return {k: res[k] for k in ("dsc", "per_class", "rule", "selected_on")}


def _remove_stale_predictions(folder: Path, keep: set[str]) -> None:
    """Delete label maps an earlier run left in ``folder`` that this run did not write, so
    the folder never mixes predictions of different checkpoints."""
    if not folder.is_dir():
        return
    for f in sorted(folder.glob("*.nii.gz")):
        if f.name not in keep:
            f.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()  # only succeeds when empty


def _save_prediction_nifti(item: Mapping[str, Any], pred: np.ndarray, path: Path) -> None:
    """Write a label map as NIfTI in the source geometry stored with its test volume."""
    from mtunet.data import nifti

    nifti.write_volume_prediction(item, pred, path)


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
        _input_size(model, ckpt),
        batch_size,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    nifti.write_like(volume, pred, output_path, dtype=np.uint8)
    return output_path


__all__ = [
    "OFFICIAL_DATASETS",
    "EvalConfig",
    "check_compatible",
    "evaluate",
    "predict_file",
    "predict_volume",
    "resolve_device",
]
