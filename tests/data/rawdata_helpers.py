"""Helpers that write tiny raw datasets for the data tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

# LPS-like storage (what BTCV uses): voxel axis 0 runs right -> left, 1 anterior -> posterior.
LPS_AFFINE = np.diag([-0.8, -0.8, 2.5, 1.0])


def save(path: Path, data: np.ndarray, affine: np.ndarray = LPS_AFFINE, **kw: float) -> Path:
    """Write a NIfTI with nibabel directly (independent of the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    if "slope" in kw:
        img.header.set_slope_inter(kw["slope"], kw["inter"])
    nib.save(img, path)
    return path


def synapse_case(
    root: Path,
    num: int,
    shape: tuple[int, int, int] = (6, 5, 4),
    seed: int = 0,
    layout: str = "RawData/Training",
) -> tuple[np.ndarray, np.ndarray]:
    """Write img/label of case ``num``; returns (hu int16, btcv labels) in source order."""
    rng = np.random.default_rng([seed, num])
    hu = rng.integers(-300, 400, size=shape).astype(np.int16)
    lab = rng.integers(0, 14, size=shape).astype(np.uint8)
    base = root / layout
    save(base / "img" / f"img{num:04d}.nii.gz", hu)
    save(base / "label" / f"label{num:04d}.nii.gz", lab)
    return hu, lab


def acdc_patient(
    root: Path,
    num: int,
    ed: int = 1,
    es: int = 3,
    shape: tuple[int, int, int] = (6, 5, 3),
    info: str | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Write training/patientXXX with Info.cfg and ED/ES frames; returns frame -> (img, gt)."""
    folder = root / "training" / f"patient{num:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    if info is None:
        info = f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 180.0\nNbFrame: 4\nWeight: 80.0\n"
    (folder / "Info.cfg").write_text(info)
    rng = np.random.default_rng(num)
    out = {}
    affine = np.diag([1.5, 1.5, 10.0, 1.0])
    save(folder / f"patient{num:03d}_4d.nii.gz", np.zeros((*shape, 4), np.int16), affine)
    for frame in sorted({ed, es}):
        img = rng.integers(0, 500, size=shape).astype(np.int16)
        gt = rng.integers(0, 4, size=shape).astype(np.uint8)
        save(folder / f"patient{num:03d}_frame{frame:02d}.nii.gz", img, affine)
        save(folder / f"patient{num:03d}_frame{frame:02d}_gt.nii.gz", gt, affine)
        out[frame] = (img, gt)
    return out


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
