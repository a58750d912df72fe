"""Shared pieces of the data stage: class tables, deterministic writers, file readers,
intensity normalisation and input checks (the ``dataset.json`` manifest is
:mod:`mtunet.data.manifest`).

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
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtunet.fileio import atomic_path

#: Up to this many cases of a split absent from disk, an error suggests
#: ``allow_missing_cases``; beyond it the data is more likely held in another arrangement,
#: and skipping would silently drop most of it.
FEW_MISSING = 5

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


def missing_cases_error(
    where: Path, names: list[str], wanted: int, found: str, layout: str, what: str = "cases"
) -> FileNotFoundError:
    """The error for cases of a split that are not on disk.

    Only a few missing cases (at most :data:`FEW_MISSING`) get the advice to skip them; more
    than that says what was found and how the layout should look instead.

    Args:
        where: The input folder.
        names: Names of the split's cases not found, in order.
        wanted: How many cases the split has.
        found: What is on disk, in words.
        layout: What the layout should look like, in words.
        what: The word for a case (``"cases"``, ``"patients"``).
    """
    more = " ..." if len(names) > 10 else ""
    head = (
        f"{where}: {len(names)} {what} {names[:10]}{more} are in the split but not on disk "
        f"({len(names)} of {wanted}); found {found}"
    )
    if len(names) <= FEW_MISSING:
        return FileNotFoundError(
            f"{head}. Set allow_missing_cases: true to skip them (recorded in dataset.json "
            "as source_info.missing_cases)."
        )
    return FileNotFoundError(
        f"{head}. Too many to skip: check that raw_dir is the folder holding the data. {layout}"
    )
