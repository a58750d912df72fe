"""NIfTI in and out: read a scan into a fixed (Z, H, W) order, write arrays back in the
source file's voxel order and affine.

Orientations (no resampling ever: only axis permutations and flips):

- ``"canonical"`` (Synapse CT): the voxel axes are matched to the closest RAS+ world
  axes (``nibabel.io_orientation``, as ``as_closest_canonical`` does); then
  Z = inferior -> superior, H = anterior -> posterior, W = patient's right -> left.
  An axial slice ``volume[z]`` is the radiological view (anterior at the top, the
  patient's right on the image's left), the view of the published figures.
- ``"voxel"`` (ACDC short-axis MR, whose oblique stacks must not be re-sliced): the stored
  voxel order reversed, ``(Z, H, W) = data.transpose(2, 1, 0)`` (what SimpleITK's
  ``GetArrayFromImage`` gives), so Z is the stack axis.

A scan whose voxel-to-world affine is degenerate (not finite, or singular: a zero row or
column, two parallel axes) is refused with a ``ValueError`` naming the file and the affine,
in either orientation: it has no orientation to match, and nibabel cannot write a label
map with that affine back either. Fix the file's sform/qform (or drop the broken one).

:class:`Geometry` records the source affine, shape and the permutation/flips, so
:func:`write_like` puts a (Z, H, W) prediction back into the source voxel order with the
source affine; the same record is stored in the ``.npy.h5`` attributes
(:meth:`Geometry.to_attrs`).

NIfTI files are written deterministically: the image is serialised in memory and gzipped
with ``mtime=0`` and no file name in the gzip header, then renamed into place.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np

from mtunet.fileio import write_bytes

Orientation = Literal["canonical", "voxel"]
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Geometry:
    """How a source NIfTI's voxel array maps to the (Z, H, W) array we use.

    ``zhw = np.flip(source.transpose(axes), [i for i in range(3) if flips[i]])``.

    Attributes:
        affine: Source voxel-to-world affine (4, 4), float64.
        source_shape: Shape of the source voxel array (3 spatial dims).
        axes: Source axis that becomes Z, H and W.
        flips: Whether Z, H, W are reversed after the transpose.
        zooms: Source voxel sizes (mm) along the source axes.
        orientation: ``"canonical"`` or ``"voxel"`` (see the module docstring).
    """

    affine: np.ndarray
    source_shape: tuple[int, int, int]
    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    zooms: tuple[float, float, float]
    orientation: str

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in mm of the (Z, H, W) array."""
        return tuple(float(self.zooms[a]) for a in self.axes)  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape (Z, H, W) of the reoriented array."""
        return tuple(int(self.source_shape[a]) for a in self.axes)  # type: ignore[return-value]

    def to_zhw(self, source: np.ndarray) -> np.ndarray:
        """Source voxel order (3-D) -> (Z, H, W); a view when possible."""
        if tuple(source.shape) != tuple(self.source_shape):
            raise ValueError(f"expected source shape {self.source_shape}, got {source.shape}")
        out = source.transpose(self.axes)
        flip_axes = [i for i in range(3) if self.flips[i]]
        return np.flip(out, flip_axes) if flip_axes else out

    def from_zhw(self, zhw: np.ndarray) -> np.ndarray:
        """(Z, H, W) -> source voxel order; exact inverse of :meth:`to_zhw`."""
        if tuple(zhw.shape) != self.shape:
            raise ValueError(f"expected (Z, H, W) shape {self.shape}, got {tuple(zhw.shape)}")
        flip_axes = [i for i in range(3) if self.flips[i]]
        out = np.flip(zhw, flip_axes) if flip_axes else zhw
        return out.transpose(np.argsort(self.axes))

    def to_attrs(self) -> dict[str, Any]:
        """HDF5 attributes (numbers and strings only)."""
        return {
            "affine": np.asarray(self.affine, dtype=np.float64),
            "source_shape": np.asarray(self.source_shape, dtype=np.int64),
            "source_axes": np.asarray(self.axes, dtype=np.int64),
            "source_flips": np.asarray(self.flips, dtype=np.int8),
            "source_zooms": np.asarray(self.zooms, dtype=np.float64),
            "orientation": self.orientation,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Geometry | None:
        """Inverse of :meth:`to_attrs`; None when the attributes carry no geometry."""
        needed = ("affine", "source_shape", "source_axes", "source_flips", "source_zooms")
        if not all(k in attrs for k in needed):
            return None
        orientation = attrs.get("orientation", "canonical")
        if isinstance(orientation, bytes):
            orientation = orientation.decode()
        return cls(
            affine=np.asarray(attrs["affine"], dtype=np.float64).reshape(4, 4),
            source_shape=tuple(int(v) for v in attrs["source_shape"]),  # type: ignore[arg-type]
            axes=tuple(int(v) for v in attrs["source_axes"]),  # type: ignore[arg-type]
            flips=tuple(bool(v) for v in attrs["source_flips"]),  # type: ignore[arg-type]
            zooms=tuple(float(v) for v in attrs["source_zooms"]),  # type: ignore[arg-type]
            orientation=str(orientation),
        )


@dataclass(frozen=True)
class NiftiVolume:
    """A scan read by :func:`read_volume`.

    Attributes:
        image: (Z, H, W) array in the file's intensity units (scaling applied); the stored
            integer type when the file has no scaling, else float32.
        spacing: (z, y, x) voxel size in mm.
        geometry: For writing results back (:func:`write_like`).
        path: The file read.
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    geometry: Geometry
    path: Path


def _format_affine(affine: np.ndarray) -> str:
    """The affine as a one-line nested list (rounded), for error messages."""
    return str(np.round(np.asarray(affine, dtype=np.float64), 6).tolist())


def check_affine(affine: np.ndarray) -> np.ndarray:
    """Return ``affine`` as float64 (4, 4) if it maps voxels to world invertibly.

    Raises:
        ValueError: Not a (4, 4) array, not finite, or a singular 3x3 part, e.g. a zero row
            or column: rank < 3 after scaling the columns to unit length, the test (and
            tolerance) by which ``nibabel.io_orientation`` leaves an axis unoriented.
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) voxel-to-world affine, got shape {a.shape}")
    rzs = a[:3, :3]
    norms = np.sqrt((rzs**2).sum(axis=0)) if np.isfinite(a).all() else np.zeros(3)
    if not norms.all() or np.linalg.matrix_rank(rzs / norms) < 3:
        raise ValueError(
            "degenerate voxel-to-world affine (singular or not finite, so the voxel axes "
            f"have no orientation): {_format_affine(a)}"
        )
    return a


def geometry_for(
    affine: np.ndarray,
    shape: tuple[int, ...],
    zooms: tuple[float, ...] | None = None,
    orientation: Orientation = "canonical",
) -> Geometry:
    """The :class:`Geometry` of a 3-D source array with this affine.

    Args:
        affine: (4, 4) voxel-to-world affine.
        shape: Source array shape (first three dims used).
        zooms: Voxel sizes along the source axes (default: the affine's column norms).
        orientation: ``"canonical"`` or ``"voxel"``.

    Raises:
        ValueError: Unknown ``orientation``, or a degenerate affine (:func:`check_affine`),
            whatever the orientation.
    """
    if orientation not in ("canonical", "voxel"):
        raise ValueError(f"orientation: must be 'canonical' or 'voxel', got {orientation!r}")
    affine = check_affine(affine)
    if zooms is None:
        zooms = tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    if orientation == "voxel":
        axes, flips = (2, 1, 0), (False, False, False)
    else:
        ornt = nib.io_orientation(affine)  # per source axis: (RAS world axis, +1 / -1)
        if np.isnan(ornt).any():  # not expected after check_affine; never index into it
            raise ValueError(f"degenerate voxel-to-world affine: {_format_affine(affine)}")
        axes_l, flips_l = [], []
        # Z <- world S (axis 2, kept); H <- world A reversed; W <- world R reversed.
        for world_axis, extra_flip in ((2, False), (1, True), (0, True)):
            src = int(np.flatnonzero(ornt[:, 0] == world_axis)[0])
            axes_l.append(src)
            flips_l.append(bool((ornt[src, 1] < 0) != extra_flip))
        axes, flips = tuple(axes_l), tuple(flips_l)
    return Geometry(
        affine=affine,
        source_shape=tuple(int(s) for s in shape[:3]),  # type: ignore[arg-type]
        axes=axes,  # type: ignore[arg-type]
        flips=flips,  # type: ignore[arg-type]
        zooms=tuple(float(z) for z in zooms[:3]),  # type: ignore[arg-type]
        orientation=orientation,
    )


def is_nifti(path: str | os.PathLike[str]) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz``."""
    return Path(path).name.endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | os.PathLike[str]) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _load_array(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read the voxel array with the NIfTI scaling applied (float32 if scaled)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        img = nib.load(path)
        proxy = img.dataobj
        if hasattr(proxy, "get_unscaled"):
            raw = np.asarray(proxy.get_unscaled())
            slope, inter = float(proxy.slope), float(proxy.inter)
            if slope != 1.0 or inter != 0.0:
                raw = raw.astype(np.float32) * np.float32(slope) + np.float32(inter)
        else:
            raw = np.asarray(proxy)
    except Exception as exc:  # nibabel/gzip/zlib raise many types for bad files
        raise ValueError(f"{path}: unreadable or truncated NIfTI file ({exc})") from exc
    if raw.dtype == np.float64:
        raw = raw.astype(np.float32)
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D volume, got shape {raw.shape}")
    return raw, img


def read_volume(
    path: str | os.PathLike[str], orientation: Orientation = "canonical"
) -> NiftiVolume:
    """Read a 3-D NIfTI into (Z, H, W) order.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        orientation: ``"canonical"`` (CT) or ``"voxel"`` (short-axis MR); module docstring.

    Returns:
        :class:`NiftiVolume` with ``image`` (Z, H, W) contiguous.

    Raises:
        FileNotFoundError: Missing file.
        ValueError: Unreadable/truncated file, not 3-D, or a degenerate affine (singular
            or not finite; module docstring), naming the file.
    """
    p = Path(path)
    raw, img = _load_array(p)
    try:
        geom = geometry_for(img.affine, raw.shape, img.header.get_zooms()[:3], orientation)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc
    return NiftiVolume(np.ascontiguousarray(geom.to_zhw(raw)), geom.spacing, geom, p)


def nifti_bytes(array: np.ndarray, affine: np.ndarray, gz: bool = True) -> bytes:
    """Serialise ``array`` (source voxel order) as NIfTI-1 bytes, gzipped deterministically."""
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    data = img.to_bytes()
    # mtime=0 and no file name in the header: identical bytes on every run.
    return gzip.compress(data, compresslevel=1, mtime=0) if gz else data


def save_nifti(path: str | os.PathLike[str], array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` (source voxel order) with ``affine`` atomically and deterministically.

    ``.nii.gz`` names are gzipped, ``.nii`` are not.
    """
    p = Path(path)
    if not is_nifti(p):
        raise ValueError(f"{p}: a NIfTI output must end in .nii or .nii.gz")
    write_bytes(p, nifti_bytes(array, affine, gz=p.name.endswith(".gz")))
    return p


def write_like(
    reference: NiftiVolume | Geometry,
    array: np.ndarray,
    path: str | os.PathLike[str],
    dtype: np.dtype | type = np.uint8,
) -> Path:
    """Write a (Z, H, W) array (e.g. a label map) in the reference scan's geometry.

    Args:
        reference: The volume it was computed from (or its :class:`Geometry`).
        array: (Z, H, W), the shape of ``reference.image``.
        path: Output ``.nii.gz`` / ``.nii``: same voxel order, shape and affine as the source.
        dtype: Stored data type (uint8 for label maps).
    """
    geom = reference.geometry if isinstance(reference, NiftiVolume) else reference
    src = np.ascontiguousarray(geom.from_zhw(np.asarray(array).astype(dtype, copy=False)))
    return save_nifti(path, src, geom.affine)


def write_volume_prediction(
    item: Mapping[str, Any], pred: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """Write a prediction for a :class:`~mtunet.data.VolumeDataset` item as NIfTI.

    When the item's ``.npy.h5`` records a source geometry (volumes made from NIfTI), the
    output has the source voxel order and affine. Otherwise (published releases) the
    array is written as ``pred.transpose(2, 1, 0)`` with a diagonal affine from the item's
    spacing (1 mm when unknown).

    Args:
        item: Dict with ``"path"`` (the volume file) and ``"spacing"``.
        pred: uint8 (Z, H, W) label map.
        path: Output ``.nii.gz``.
    """
    import h5py

    src = Path(item["path"])
    geom = None
    if not src.name.endswith(".npz"):
        with h5py.File(src, "r") as f:
            geom = Geometry.from_attrs({k: f.attrs[k] for k in f.attrs})
    if geom is not None:
        return write_like(geom, pred, path)
    spacing = item.get("spacing") or (1.0, 1.0, 1.0)
    affine = np.diag([float(spacing[2]), float(spacing[1]), float(spacing[0]), 1.0])
    return save_nifti(path, np.asarray(pred, dtype=np.uint8).transpose(2, 1, 0), affine)
