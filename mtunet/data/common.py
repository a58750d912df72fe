"""Shared pieces of the data stage: class tables, deterministic writers, file readers,
intensity normalisation, statistics and the ``dataset.json`` manifest.

Deterministic writers (reruns give byte-identical files):

- ``write_npz``: an uncompressed ``.npz`` (what ``np.savez`` writes) but every zip entry
  carries the fixed date 1980-01-01 instead of the current time.
- ``write_h5``: HDF5 datasets created with ``track_times=False`` (no creation timestamps).

Both write through :func:`mtunet.fileio.atomic_path`: a hidden temporary name renamed
into place only when complete.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtunet.fileio import atomic_path, read_json, write_json

SYNAPSE_CLASSES: tuple[str, ...] = (
    "background",
    "aorta",
    "gallbladder",
    "kidney_left",
    "kidney_right",
    "liver",
    "pancreas",
    "spleen",
    "stomach",
)
ACDC_CLASSES: tuple[str, ...] = ("background", "rv", "myo", "lv")

MANIFEST_NAME = "dataset.json"
MANIFEST_FORMAT = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SLICE_RE = re.compile(r"^(?P<case>.*?)_slice(?P<phase>[A-Za-z]*)_?(?P<index>\d+)$")


# --------------------------------------------------------------------------------------
# Deterministic writers
# --------------------------------------------------------------------------------------


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write an uncompressed ``.npz`` atomically, byte-identical for identical arrays.

    Args:
        path: Destination, e.g. ``train_npz/case0005_slice000.npz``.
        arrays: Name -> array; stored as ``<name>.npy`` members in the given order.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)


def write_h5(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write an HDF5 file (``.npy.h5``) atomically without timestamps.

    Args:
        path: Destination, e.g. ``test_vol_h5/case0001.npy.h5``.
        arrays: Dataset name -> array (stored uncompressed, as the published files are).
        attrs: File attributes (numbers, arrays, strings).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver="earliest") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=np.ascontiguousarray(arr), track_times=False)
        for key, value in sorted((attrs or {}).items()):
            f.attrs[key] = value


# --------------------------------------------------------------------------------------
# Readers for slices and volumes (ours and the published releases)
# --------------------------------------------------------------------------------------


def _npz_arrays(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            out = {}
            for key in keys:
                alias = {"image": ("image", "img")}.get(key, (key,))
                found = next((a for a in alias if a in names), None)
                if found is None:
                    raise ValueError(
                        f"{path}: missing array {key!r} (has {sorted(names)}; "
                        f"expected {' or '.join(repr(a) for a in alias)})"
                    )
                out[key] = data[found]
            return out
    except ValueError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError on truncated files
        raise ValueError(f"{path}: unreadable or truncated .npz ({exc})") from exc


def _h5_arrays(path: Path, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """Datasets ``keys`` of an HDF5 file; errors name the file and what is wrong."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            out = {}
            for key in keys:
                if key not in f:
                    raise ValueError(f"{path}: missing dataset {key!r} (has {sorted(f.keys())})")
                out[key] = f[key][()]
            return out
    except ValueError:
        raise
    except Exception as exc:  # OSError for truncated / not-HDF5 files
        raise ValueError(f"{path}: unreadable or truncated HDF5 file ({exc})") from exc


def read_slice(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a slice file.

    Args:
        path: ``.npz`` with ``image`` (or ``img``, MT-UNet's ACDC release) and ``label``, or
            ``.h5`` with datasets ``image`` and ``label`` (the SSL4MIS ACDC layout).

    Returns:
        ``(image float32 (H, W), label uint8 (H, W))``.

    Raises:
        FileNotFoundError: Missing file. ValueError: unreadable file, missing arrays, or
        image and label of different shapes.
    """
    p = Path(path)
    if p.name.endswith(".h5"):
        arrays = _h5_arrays(p, ("image", "label"))
    else:
        arrays = _npz_arrays(p, ("image", "label"))
    image, label = arrays["image"], arrays["label"]
    if image.ndim != 2 or image.shape != label.shape:
        raise ValueError(
            f"{p}: expected 2-D image and label of one shape, got {image.shape} and {label.shape}"
        )
    return image.astype(np.float32, copy=False), label.astype(np.uint8, copy=False)


def read_volume(
    path: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float] | None, dict[str, Any]]:
    """Read a test/validation volume.

    Args:
        path: ``.npy.h5`` / ``.h5`` (datasets ``image``, ``label``; attrs) or ``.npz``
            (MT-UNet's ACDC release: ``img``, ``label``).

    Returns:
        ``(image float32 (Z, H, W), label uint8 (Z, H, W), spacing (z, y, x) mm or None,
        attrs dict)``.
    """
    p = Path(path)
    if p.name.endswith(".npz"):
        arrays = _npz_arrays(p, ("image", "label"))
        image, label, attrs = arrays["image"], arrays["label"], {}
    else:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: file not found")
        try:
            with h5py.File(p, "r") as f:
                for key in ("image", "label"):
                    if key not in f:
                        raise ValueError(f"{p}: missing dataset {key!r} (has {sorted(f.keys())})")
                image, label = f["image"][()], f["label"][()]
                attrs = {k: f.attrs[k] for k in f.attrs}
        except ValueError:
            raise
        except Exception as exc:  # OSError for truncated / not-HDF5 files
            raise ValueError(f"{p}: unreadable or truncated HDF5 file ({exc})") from exc
    if image.ndim != 3 or image.shape != label.shape:
        raise ValueError(
            f"{p}: expected 3-D image and label of one shape, got {image.shape} and {label.shape}"
        )
    spacing = None
    if "spacing" in attrs:
        spacing = tuple(float(s) for s in np.asarray(attrs["spacing"]).ravel()[:3])
    return image.astype(np.float32, copy=False), label.astype(np.uint8, copy=False), spacing, attrs


def slice_case_name(path: str | os.PathLike[str]) -> str:
    """Case id of a slice file: ``case0005_slice012.npz`` -> ``case0005``;
    ``patient001_ED_slice003.npz`` -> ``patient001_ED``; ``case_001_sliceED_3.npz``
    (MT-UNet's ACDC release) -> ``case_001_ED``; ``patient001_frame01_slice_3.h5``
    (SSL4MIS) -> ``patient001_frame01``."""
    stem = Path(path).name.removesuffix(".npz").removesuffix(".h5")
    m = _SLICE_RE.match(stem)
    if m is None:
        return stem
    return m["case"] + (f"_{m['phase']}" if m["phase"] else "")


def volume_case_name(path: str | os.PathLike[str]) -> str:
    """Case id of a volume file: ``case0001.npy.h5`` -> ``case0001``;
    ``case_002_volume_ED.npz`` -> ``case_002_ED``."""
    name = Path(path).name
    for suffix in (".npy.h5", ".h5", ".npz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("_volume", "")


# --------------------------------------------------------------------------------------
# Intensity normalisation
# --------------------------------------------------------------------------------------


def normalize(volume: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """Apply a manifest's ``preprocessing`` to a raw volume.

    Args:
        volume: Raw intensities, any shape (CT in Hounsfield units, MR arbitrary units).
        preprocessing: ``{"kind": "ct_window", "hu_min": a, "hu_max": b}`` (clip to [a, b],
            then ``(x - a) / (b - a)``) or ``{"kind": "minmax"}`` (``(x - min) / (max - min)``
            over the whole array; a constant array gives zeros).

    Returns:
        float32 array of the same shape, values in [0, 1].

    Raises:
        ValueError: Unknown kind, bad window, or non-finite intensities.
    """
    kind = preprocessing.get("kind")
    x = np.asarray(volume)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"normalize: volume has {int((~np.isfinite(x)).sum())} non-finite values")
    if kind == "ct_window":
        lo, hi = float(preprocessing["hu_min"]), float(preprocessing["hu_max"])
        if not hi > lo:
            raise ValueError(f"preprocessing: hu_max ({hi}) must exceed hu_min ({lo})")
        out = np.clip(x.astype(np.float32, copy=False), lo, hi)
        out -= np.float32(lo)
        out /= np.float32(hi - lo)
        return out
    if kind == "minmax":
        out = x.astype(np.float32)  # always a copy: the caller's array is not modified
        lo, hi = float(out.min()), float(out.max())
        if hi > lo:
            out -= np.float32(lo)
            out /= np.float32(hi - lo)
        else:
            out[...] = 0.0
        return out
    raise ValueError(f"preprocessing.kind: must be 'ct_window' or 'minmax', got {kind!r}")


# --------------------------------------------------------------------------------------
# Checks on raw data
# --------------------------------------------------------------------------------------


def check_image(image: np.ndarray, path: Path) -> None:
    """Raise ValueError naming ``path`` if ``image`` has non-finite values."""
    if image.dtype.kind == "f":
        bad = ~np.isfinite(image)
        if bad.any():
            raise ValueError(f"{path}: {int(bad.sum())} non-finite intensities (NaN or inf)")


def check_labels(label: np.ndarray, max_id: int, path: Path) -> np.ndarray:
    """Return ``label`` as an integer array after checking its values are in 0..max_id.

    Args:
        label: Label volume as read (integer, or float holding integers).
        max_id: Largest valid id (13 for BTCV, 3 for ACDC).
        path: File named in errors.

    Raises:
        ValueError: Naming ``path`` for non-integer or out-of-range label values.
    """
    lab = np.asarray(label)
    if lab.dtype.kind == "f":
        if not np.isfinite(lab).all() or not np.array_equal(lab, np.round(lab)):
            raise ValueError(f"{path}: label values must be integers")
        lab = lab.astype(np.int32)
    elif lab.dtype.kind not in "iub":
        raise ValueError(f"{path}: label data type {lab.dtype} is not numeric")
    if lab.size and (int(lab.min()) < 0 or int(lab.max()) > max_id):
        bad = np.unique(lab[(lab < 0) | (lab > max_id)])
        raise ValueError(
            f"{path}: label values {bad[:10].tolist()} outside the expected ids 0..{max_id}"
        )
    return lab


def check_same_shape(
    image_shape: tuple[int, ...], label_shape: tuple[int, ...], image_path: Path, label_path: Path
) -> None:
    """Raise ValueError naming both files when image and label shapes differ."""
    if tuple(image_shape) != tuple(label_shape):
        raise ValueError(
            f"{image_path} and {label_path}: image shape {tuple(image_shape)} does not match "
            f"label shape {tuple(label_shape)}"
        )


# --------------------------------------------------------------------------------------
# Statistics for dataset.json
# --------------------------------------------------------------------------------------


@dataclass
class IntensityStats:
    """Running min / max / mean / std over many arrays (float64 accumulators)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")

    def add(self, x: np.ndarray) -> None:
        x64 = x.astype(np.float64, copy=False)
        self.n += x.size
        self.total += float(x64.sum())
        self.total_sq += float(np.square(x64).sum())
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    def to_dict(self) -> dict[str, float | int | None]:
        if self.n == 0:
            return {"count": 0, "max": None, "mean": None, "min": None, "std": None}
        mean = self.total / self.n
        var = max(self.total_sq / self.n - mean * mean, 0.0)
        return {
            "count": self.n,
            "max": round(self.hi, 6),
            "mean": round(mean, 6),
            "min": round(self.lo, 6),
            "std": round(float(np.sqrt(var)), 6),
        }


@dataclass
class SplitStats:
    """What dataset.json records per split: shapes, spacings, intensities, class voxels."""

    num_classes: int
    shapes: dict[str, list[int]] = field(default_factory=dict)
    spacings: dict[str, list[float] | None] = field(default_factory=dict)
    intensity: IntensityStats = field(default_factory=IntensityStats)
    raw_intensity: IntensityStats = field(default_factory=IntensityStats)
    class_voxels: np.ndarray | None = None

    def add_case(
        self,
        case: str,
        image: np.ndarray,
        label: np.ndarray,
        spacing: tuple[float, float, float] | None,
        raw: np.ndarray | None = None,
    ) -> None:
        """Record one case (or one slice, with ``case`` its case id: shapes then grow)."""
        self.shapes[case] = [int(s) for s in image.shape]
        self.spacings[case] = None if spacing is None else [round(float(s), 6) for s in spacing]
        self.intensity.add(image)
        if raw is not None:
            self.raw_intensity.add(raw)
        counts = np.bincount(label.ravel(), minlength=self.num_classes)[: self.num_classes]
        self.class_voxels = counts if self.class_voxels is None else self.class_voxels + counts

    def voxels(self, class_names: tuple[str, ...]) -> dict[str, int]:
        counts = self.class_voxels
        if counts is None:
            counts = np.zeros(len(class_names), dtype=np.int64)
        return {name: int(c) for name, c in zip(class_names, counts, strict=True)}


# --------------------------------------------------------------------------------------
# Manifest (dataset.json)
# --------------------------------------------------------------------------------------


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (may start with ``../``)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


@dataclass(frozen=True)
class Manifest:
    """A parsed ``dataset.json``.

    Attributes:
        root: Folder holding dataset.json; every path in it is relative to this folder.
        name: ``"synapse"`` or ``"acdc"``.
        num_classes: Classes including background.
        class_names: Name per class id.
        modality: ``"CT"`` or ``"MR"``.
        preprocessing: For :func:`normalize`.
        splits: ``{"train"|"val"|"test": {"cases": [...], "slices": [...], "volumes": [...]}}``.
        raw: The whole parsed JSON (counts, shapes, statistics...).
    """

    root: Path
    name: str
    num_classes: int
    class_names: tuple[str, ...]
    modality: str
    preprocessing: dict[str, Any]
    splits: dict[str, dict[str, list[str]]]
    raw: dict[str, Any]

    def paths(self, split: str, kind: str) -> list[Path]:
        """Files of ``split`` (``train``/``val``/``test``) of ``kind`` (``slices``/``volumes``).

        Raises:
            ValueError: Unknown split or kind.
        """
        if split not in self.splits:
            raise ValueError(
                f"{self.root / MANIFEST_NAME}: no split {split!r} (has {sorted(self.splits)})"
            )
        if kind not in ("slices", "volumes"):
            raise ValueError(f"kind: must be 'slices' or 'volumes', got {kind!r}")
        return [self.root / p for p in self.splits[split].get(kind, [])]

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME


def load_manifest(path_or_dir: str | os.PathLike[str], check_files: bool = True) -> Manifest:
    """Read ``dataset.json`` (or the folder holding it).

    Args:
        path_or_dir: The JSON file or its folder.
        check_files: Also check every listed slice and volume file exists.

    Raises:
        FileNotFoundError: No dataset.json, or (``check_files``) a listed file is missing.
        ValueError: Invalid JSON or missing / inconsistent fields.
    """
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / MANIFEST_NAME
    data = read_json(p)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object")
    for key in ("name", "num_classes", "class_names", "modality", "preprocessing", "splits"):
        if key not in data:
            raise ValueError(f"{p}: missing field {key!r}")
    names = tuple(data["class_names"])
    if len(names) != data["num_classes"]:
        raise ValueError(
            f"{p}: num_classes is {data['num_classes']} but class_names has {len(names)} entries"
        )
    splits = data["splits"]
    if not isinstance(splits, dict):
        raise ValueError(f"{p}: splits must be an object")
    root = p.parent
    if check_files:
        for split, entry in splits.items():
            for kind in ("slices", "volumes"):
                for rel_path in entry.get(kind, []):
                    if not (root / rel_path).is_file():
                        raise FileNotFoundError(
                            f"{p}: {split} {kind[:-1]} {rel_path} is listed but not on disk"
                        )
    return Manifest(
        root=root,
        name=str(data["name"]),
        num_classes=int(data["num_classes"]),
        class_names=names,
        modality=str(data["modality"]),
        preprocessing=dict(data["preprocessing"]),
        splits={k: {kk: list(vv) for kk, vv in v.items()} for k, v in splits.items()},
        raw=data,
    )


def empty_split() -> dict[str, list[str]]:
    return {"cases": [], "slices": [], "volumes": []}


def prepare_out_dir(out_dir: Path) -> None:
    """Remove a stale dataset.json and leftover temporary files before a run.

    The manifest is written last, so until a run completes no later stage accepts the
    folder; hidden ``.*.tmp`` files are what an interrupted :func:`atomic_path` leaves.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for tmp in out_dir.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def remove_stale(out_dir: Path, subdirs: Iterable[str], keep: set[Path]) -> list[str]:
    """Delete slice/volume files in our own output subfolders not written by this run.

    Returns:
        Relative paths of the removed files (so reruns with fewer cases leave no orphans).
    """
    removed = []
    keep_resolved = {k.resolve() for k in keep}
    for sub in subdirs:
        folder = out_dir / sub
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.resolve() not in keep_resolved:
                f.unlink()
                removed.append(rel(f, out_dir))
    return removed


def add_slice_stats(stats: SplitStats, case: str, image: np.ndarray, label: np.ndarray) -> None:
    """Record one 2-D slice of ``case``: its shape becomes (slices so far, H, W)."""
    count = stats.shapes.get(case, [0])[0] + 1
    stats.shapes[case] = [count, int(image.shape[0]), int(image.shape[1])]
    stats.spacings.setdefault(case, None)
    stats.intensity.add(image)
    counts = np.bincount(label.ravel(), minlength=stats.num_classes)[: stats.num_classes]
    stats.class_voxels = counts if stats.class_voxels is None else stats.class_voxels + counts


def manifest_dict(
    *,
    name: str,
    source: str,
    modality: str,
    class_names: tuple[str, ...],
    preprocessing: dict[str, Any],
    splits: dict[str, dict[str, list[str]]],
    stats: dict[str, SplitStats],
    source_info: dict[str, Any],
) -> dict[str, Any]:
    """Assemble the ``dataset.json`` object (the contract's fields plus statistics).

    Extra fields: ``counts`` (cases / slices / volumes per split), ``shapes`` and
    ``spacings`` per split and case ((Z, H, W) and (z, y, x) mm; slices-only cases list
    their slice count as Z), ``intensity`` per split (``normalized`` and, from raw data,
    ``raw``: count, min, max, mean, std), ``class_voxels`` per split and class name, and
    ``source_info`` (input folder relative to the output, configuration, orientation,
    missing / unused cases).
    """
    empty = SplitStats(len(class_names))
    return {
        "format_version": MANIFEST_FORMAT,
        "name": name,
        "source": source,
        "modality": modality,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "preprocessing": preprocessing,
        "splits": splits,
        "counts": {
            s: {k: len(v.get(k, [])) for k in ("cases", "slices", "volumes")}
            for s, v in splits.items()
        },
        "shapes": {s: stats.get(s, empty).shapes for s in splits},
        "spacings": {s: stats.get(s, empty).spacings for s in splits},
        "intensity": {
            s: {
                "normalized": stats.get(s, empty).intensity.to_dict(),
                "raw": stats.get(s, empty).raw_intensity.to_dict(),
            }
            for s in splits
        },
        "class_voxels": {s: stats.get(s, empty).voxels(class_names) for s in splits},
        "source_info": source_info,
    }


def write_manifest(out_dir: Path, **fields: Any) -> dict[str, Any]:
    """Build the manifest (:func:`manifest_dict` arguments) and write ``out_dir/dataset.json``.

    Written last by every preprocessing path, so its presence marks a complete output folder.
    """
    manifest = manifest_dict(**fields)
    write_json(out_dir / "dataset.json", manifest)
    return manifest


def write_list(path: Path, names: Iterable[str]) -> None:
    """Write a split list (one name per line, final newline) atomically."""
    from mtunet.fileio import write_text

    names = list(names)
    write_text(path, "".join(f"{n}\n" for n in names))


def read_list(path: Path) -> list[str]:
    """Read a split list: one entry per non-empty line, whitespace stripped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
