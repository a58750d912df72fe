"""Test-set evaluation with the published protocol: Dice and HD95 per case and class.

:func:`evaluate` predicts every volume of a dataset split with
:func:`mtunet.inference.predict_volume` (TransUNet's ``test_single_volume`` protocol), scores
it with :func:`mtunet.metrics.case_metrics`, and writes the summary JSON, the per-case CSV,
qualitative slices and optionally the predictions as NIfTI.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from mtunet.config import check, from_dict, to_dict
from mtunet.fileio import atomic_path, write_json
from mtunet.inference import DEVICE_RE, input_size, predict_volume, resolve_device
from mtunet.numerics import (
    CPU_KERNELS,
    DENORMALS_RULE,
    THREADS_RULE,
    CpuKernels,
    pin_cpu_kernels,
    pin_denormals,
    pin_threads,
    valid_threads,
)

DATA_SOURCES = ("synthetic", "raw", "release")


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
        nsd_tolerance: Tolerance of the normalised surface Dice, in mm (in voxels for a
            volume without spacing).
        cpu_kernels: The CPU kernel set the forward passes run on (``native``, ``portable``
            or ``compatible``; :mod:`mtunet.numerics`), as for training: evaluation on two
            machines gives the same predictions only on the kernels training used there.
            Fixed at the process's first computation.
        threads: torch's CPU threads for the forward passes, or None for the process's own;
            as for training, a fixed count gives the same predictions on machines with
            other core counts.
        flush_denormals: Compute denormal floats as zero, as for training (the forward
            passes' bits depend on it). Fixed at the process's first parallel computation.
    """

    batch_size: int = 16
    empty_policy: Literal["published", "nan"] = "published"
    save_predictions: bool = False
    bf16: bool = False
    device: str = "auto"
    num_qualitative: int = 3
    split: Literal["test", "val"] = "test"
    threshold_baseline: bool = True
    nsd_tolerance: float = 2.0
    cpu_kernels: CpuKernels = "native"
    threads: int | None = None
    flush_denormals: bool = True

    def __post_init__(self) -> None:
        check(valid_threads(self.threads), "threads", f"{THREADS_RULE}, got {self.threads!r}")
        check(
            isinstance(self.flush_denormals, bool),
            "flush_denormals",
            f"{DENORMALS_RULE}, got {self.flush_denormals!r}",
        )
        check(
            self.cpu_kernels in CPU_KERNELS,
            "cpu_kernels",
            f"must be one of {list(CPU_KERNELS)}, got {self.cpu_kernels!r}",
        )
        check(self.nsd_tolerance >= 0, "nsd_tolerance", f"must be >= 0, got {self.nsd_tolerance}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(
            self.empty_policy in ("published", "nan"),
            "empty_policy",
            f"must be 'published' or 'nan', got {self.empty_policy!r}",
        )
        check(
            isinstance(self.device, str) and bool(DEVICE_RE.match(self.device)),
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

    Warns:
        UserWarning: Once per call, when volumes have no voxel spacing (counting and naming
            them): their HD95 in mm is omitted.
    """
    import pandas as pd

    from mtunet.checkpoint import load_checkpoint, model_from_checkpoint
    from mtunet.data import VolumeDataset, load_manifest
    from mtunet.data.common import write_npz
    from mtunet.metrics import case_metrics, summarize

    if not isinstance(cfg, EvalConfig):
        raise ValueError(f"cfg: expected an EvalConfig, got {type(cfg).__name__}")
    pin_cpu_kernels(cfg.cpu_kernels)  # before the first computation, as training does
    pin_threads(cfg.threads)
    pin_denormals(cfg.flush_denormals)
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
    img_size = input_size(model, ckpt)
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
    no_spacing: list[str] = []  # warned about once, after the loop
    for index in tqdm(range(n_cases), desc=f"evaluate {manifest.name}", unit="case"):
        item = dataset[index]
        case = str(item["case"])
        image, gt = item["image"], item["label"]
        pred = predict_volume(model, image, img_size, cfg.batch_size, amp_dtype=amp_dtype)
        spacing = item.get("spacing")
        if spacing is None:
            no_spacing.append(case)
        for row in case_metrics(
            pred,
            gt,
            manifest.num_classes,
            spacing=spacing,
            empty_policy=cfg.empty_policy,
            nsd_tolerance=cfg.nsd_tolerance,
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
                    "hd95_monai": row["hd95_monai"],
                    "hd95_monai_mm": row["hd95_monai_mm"],
                    "nsd": row["nsd"],
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

    columns = [
        "case",
        "class_id",
        "class_name",
        "dice",
        "hd95",
        "hd95_mm",
        "hd95_monai",
        "hd95_monai_mm",
        "nsd",
        "convention",
    ]
    if no_spacing:
        more = f" ... and {len(no_spacing) - 5} more" if len(no_spacing) > 5 else ""
        warnings.warn(
            f"{manifest_path}: {len(no_spacing)} of {n_cases} volumes have no voxel spacing "
            f"({', '.join(no_spacing[:5])}{more}); HD95 in mm is omitted for them, and their "
            "HD95 and surface Dice are in voxels",
            stacklevel=2,
        )
    per_case = pd.DataFrame(rows, columns=columns)
    for col in ("hd95_mm", "hd95_monai_mm"):
        per_case[col] = pd.to_numeric(per_case[col], errors="coerce")
    summary = summarize(
        per_case,
        class_names,
        empty_policy=cfg.empty_policy,
        model_selection=dict(ckpt.get("selection") or {}),
        data_source=data_source if data_source is not None else _data_source(manifest),
    )
    if cfg.threshold_baseline:
        summary["threshold_baseline"] = threshold_baseline(manifest, cfg.split)

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


def threshold_baseline(manifest: Any, split: str) -> dict[str, Any] | None:
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


__all__ = ["DATA_SOURCES", "EvalConfig", "check_compatible", "evaluate"]
