"""Synapse-like abdominal CT phantoms in the raw release layout.

``RawData/Training/{img,label}/{img,label}XXXX.nii.gz``, ids from the published split: int16
HU, air outside a body ellipse with subcutaneous fat, abdominal wall muscle, visceral fat,
spine and paraspinal muscles, bowel loops (background label) at organ-like HU, and the 13
BTCV structures placed anatomically (1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder,
5 esophagus, 6 liver, 7 stomach with an air pocket, 8 aorta, 9 IVC, 10 portal/splenic vein,
11 pancreas, 12/13 adrenals). Intensities overlap on purpose (liver ~ spleen ~ pancreas
~ bowel ~ 100 HU; kidneys ~ aorta ~ veins ~ 150 HU; gallbladder ~ stomach ~ adrenals ~
muscle ~ 40 HU), so only shape and position separate them. Stored LPS-like (affine
``diag(-sx, -sy, sz)``) with anisotropic spacing; slice counts, organ positions, sizes,
shapes and HU vary per case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtunet.data.nifti import geometry_for, save_nifti
from mtunet.data.synthetic.config import SynapsePhantomConfig
from mtunet.data.synthetic.shapes import paint_ellipsoid, smooth_noise
from mtunet.fileio import write_json

# BTCV id: (center z, h, w), radii (z, h, w), HU, wobble amplitude, bend. Paint order =
# list order (later structures overwrite earlier ones).
_SYNAPSE_ORGANS: tuple[tuple[int, tuple[float, float, float], tuple[float, float, float],
                             float, float, float], ...] = (
    (6, (0.78, -0.02, -0.40), (0.34, 0.44, 0.40), 105.0, 0.08, 0.0),   # liver
    (4, (0.50, -0.16, -0.26), (0.10, 0.08, 0.06), 15.0, 0.10, 0.0),    # gallbladder
    (1, (0.72, 0.25, 0.60), (0.20, 0.17, 0.12), 100.0, 0.10, 0.0),     # spleen
    (7, (0.70, -0.22, 0.30), (0.22, 0.20, 0.22), 35.0, 0.12, 0.06),    # stomach
    (2, (0.40, 0.36, -0.36), (0.17, 0.13, 0.09), 155.0, 0.06, 0.0),    # right kidney
    (3, (0.44, 0.36, 0.36), (0.17, 0.13, 0.09), 155.0, 0.06, 0.0),     # left kidney
    (11, (0.50, 0.10, 0.12), (0.08, 0.06, 0.30), 95.0, 0.10, -0.08),   # pancreas
    (10, (0.56, 0.06, 0.00), (0.05, 0.035, 0.32), 150.0, 0.0, -0.06),  # portal/splenic v.
    (8, (0.50, 0.28, 0.07), (0.90, 0.06, 0.06), 170.0, 0.0, 0.0),      # aorta
    (9, (0.50, 0.26, -0.14), (0.90, 0.065, 0.075), 140.0, 0.0, 0.0),   # IVC
    (12, (0.62, 0.30, -0.24), (0.06, 0.05, 0.03), 40.0, 0.0, 0.0),     # right adrenal
    (13, (0.64, 0.30, 0.24), (0.06, 0.05, 0.03), 40.0, 0.0, 0.0),      # left adrenal
    (5, (0.95, 0.20, 0.08), (0.20, 0.045, 0.045), 45.0, 0.0, 0.0),     # esophagus
)  # fmt: skip


def synapse_case(
    cfg: SynapsePhantomConfig, case: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """One synthetic CT case in (Z, H, W) radiological order.

    Returns:
        ``(hu int16 (Z, H, W), btcv label uint8 (Z, H, W), spacing (z, y, x) mm)``.
    """
    rng = np.random.default_rng([cfg.seed, case])
    n = cfg.size
    nz = int(rng.integers(cfg.min_slices, cfg.max_slices + 1))
    dxy = float(0.75 * 512 / n * rng.uniform(0.9, 1.1))
    dz = float(rng.choice([2.5, 3.0, 5.0]))
    zc = np.linspace(0.0, 1.0, nz) + rng.uniform(-0.05, 0.05)
    shift_h, shift_w = rng.uniform(-0.04, 0.04, size=2)
    scale = rng.uniform(0.94, 1.06)
    hc = (np.linspace(-1, 1, n) - shift_h) / scale
    wc = (np.linspace(-1, 1, n) - shift_w) / scale
    grids = (zc, hc, wc)
    hu = np.full((nz, n, n), -1000.0, dtype=np.float32)
    lab = np.zeros((nz, n, n), dtype=np.uint8)
    body_h, body_w = 0.68 * rng.uniform(0.95, 1.05), 0.88 * rng.uniform(0.95, 1.05)
    for rh_, rw_, val in (
        (body_h, body_w, -100.0),
        (body_h - 0.06, body_w - 0.06, 45.0),
        (body_h - 0.10, body_w - 0.10, -90.0),
    ):
        paint_ellipsoid(hu, lab, grids, (0.5, 0.02, 0.0), (5.0, rh_, rw_), val, None)
    paint_ellipsoid(hu, lab, grids, (0.5, 0.52, 0.0), (5.0, 0.11, 0.12), 500.0, None)  # spine
    for side in (-1, 1):  # paraspinal muscles
        paint_ellipsoid(hu, lab, grids, (0.5, 0.52, 0.24 * side), (5.0, 0.12, 0.12), 50.0, None)
    # Bowel loops (background label) at organ-like intensities, low in the abdomen.
    for _ in range(int(rng.integers(6, 10))):
        c = (rng.uniform(0.0, 0.55), rng.uniform(-0.45, 0.15), rng.uniform(-0.55, 0.55))
        r = (rng.uniform(0.08, 0.2), rng.uniform(0.06, 0.12), rng.uniform(0.06, 0.12))
        val = float(rng.choice([20.0, 45.0, 100.0, 110.0]) + rng.normal(0, 5))
        paint_ellipsoid(hu, lab, grids, c, r, val, 0, (0.15, 3, rng.uniform(0, 6.28)))
    for organ, center, radii, value, amp, bend in _SYNAPSE_ORGANS:
        c = tuple(x + rng.uniform(-0.03, 0.03) for x in center)
        r = tuple(x * rng.uniform(0.88, 1.12) for x in radii)
        wob = (amp * rng.uniform(0.5, 1.0), int(rng.integers(2, 5)), rng.uniform(0, 6.28))
        paint_ellipsoid(hu, lab, grids, c, r, value + rng.normal(0, 6), organ, wob, bend)  # type: ignore[arg-type]
        if organ == 7:  # air pocket in the anterior stomach, still labelled stomach
            pc = (c[0], c[1] - 0.6 * r[1], c[2])
            pr = (r[0] * 0.5, r[1] * 0.3, r[2] * 0.5)
            pocket = np.zeros_like(lab)
            paint_ellipsoid(None, pocket, grids, pc, pr, 0.0, 1)
            hu[(pocket == 1) & (lab == 7)] = -800.0
    hu += 8.0 * smooth_noise(rng, hu.shape, 8) + rng.normal(0, cfg.noise_hu, size=hu.shape).astype(
        np.float32
    )
    hu = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    return hu, lab, (dz, dxy, dxy)


def _synapse_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    dz, dy, dx = spacing
    # LPS-like storage: voxel axis 0 runs right->left, axis 1 anterior->posterior.
    return np.diag([-dx, -dy, dz, 1.0])


def write_synapse_phantoms(cfg: SynapsePhantomConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write ``RawData/Training/{img,label}/{img,label}XXXX.nii.gz`` under ``out_dir``."""
    out = Path(out_dir)
    train, test = cfg.case_ids()
    cases = {}
    for num in sorted(train + test):
        hu, lab, spacing = synapse_case(cfg, num)
        affine = _synapse_affine(spacing)
        geom = geometry_for(affine, hu.shape[::-1], orientation="canonical")
        root = out / "RawData" / "Training"
        save_nifti(root / "img" / f"img{num:04d}.nii.gz", geom.from_zhw(hu), affine)
        save_nifti(root / "label" / f"label{num:04d}.nii.gz", geom.from_zhw(lab), affine)
        cases[f"case{num:04d}"] = {"shape": list(hu.shape), "spacing": list(spacing)}
    summary = {
        "name": "synapse",
        "config": cfg.to_dict(),
        "train_cases": [f"case{n:04d}" for n in train],
        "test_cases": [f"case{n:04d}" for n in test],
        "cases": cases,
    }
    write_json(out / "phantoms.json", summary)
    return summary
