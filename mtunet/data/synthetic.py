"""Synthetic phantoms in the RAW release layouts.

Entry points:

- ``phantom_config(name, d) -> SynapsePhantomConfig | AcdcPhantomConfig`` builds the
  config from a ``params.yaml`` mapping (``datasets.<ds>.phantoms``).
- ``write_phantoms(name, cfg, out_dir) -> dict`` writes the raw dataset (name
  ``"synapse"`` or ``"acdc"``) and returns a summary (also written as
  ``out_dir/phantoms.json``).

Synapse-like CT (``RawData/Training/{img,label}/{img,label}XXXX.nii.gz``, ids from the
published split so it applies unchanged): int16 HU, air outside a body ellipse with
subcutaneous fat, abdominal wall muscle, visceral fat, spine and paraspinal muscles, bowel
loops (background label) at organ-like HU, and the 13 BTCV structures placed
anatomically (1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 esophagus,
6 liver, 7 stomach with an air pocket, 8 aorta, 9 IVC, 10 portal/splenic vein,
11 pancreas, 12/13 adrenals). Intensities overlap on purpose (liver ~ spleen ~ pancreas
~ bowel ~ 100 HU; kidneys ~ aorta ~ veins ~ 150 HU; gallbladder ~ stomach ~ adrenals ~
muscle ~ 40 HU), so only shape and position separate them. Stored LPS-like (affine
``diag(-sx, -sy, sz)``) with anisotropic spacing; slice counts, organ positions, sizes,
shapes and HU vary per case.

ACDC-like cine MR (``training/patientXXX/`` with ``Info.cfg``, ``_4d``, ``frameNN``,
``frameNN_gt``): short-axis stacks (base to apex) with RV, myocardium and LV, a
contraction cycle over ``n_frames`` (ES: smaller cavities, thicker myocardium), the five
ACDC groups (NOR, MINF, DCM, HCM, RV) changing sizes and contraction, a chest with lungs,
liver and bright fat (as bright as blood), a smooth multiplicative bias field and Rician
noise. RV and LV blood share one intensity, and the myocardium is only two to three pixels
thick at 96 x 96; the RV is a crescent around the septum, basal rings open into the outflow
tract, apical cavities close, trabeculae and papillary muscles sit in the LV cavity, and every
border is blurred by partial volume (see :func:`acdc_frame`).

Everything is a function of ``cfg.seed`` and the case id (one generator per case), so a
case does not change when other cases are added, and reruns give identical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.config import check, from_dict_for, to_dict
from mtunet.data.acdc import ACDC_TEST_PATIENTS, ACDC_VAL_PATIENTS, patient_name
from mtunet.data.nifti import geometry_for, save_nifti
from mtunet.data.synapse import SYNAPSE_TEST_CASES, SYNAPSE_TRAIN_CASES
from mtunet.fileio import write_json, write_text

ACDC_TRAIN_DEFAULT = tuple(
    p for p in range(1, 101) if p not in ACDC_VAL_PATIENTS and p not in ACDC_TEST_PATIENTS
)
ACDC_GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")


@dataclass(frozen=True)
class SynapsePhantomConfig:
    """Synthetic Synapse CT (``params.yaml``: datasets.synapse.phantoms).

    Attributes:
        seed: Base seed; case ``n`` uses ``default_rng([seed, n])``.
        n_train: Cases taken from the published 18 training ids (spread evenly).
        n_test: Cases taken from the published 12 test ids (spread evenly).
        size: In-plane size H = W in voxels (512 for full size).
        min_slices: Fewest axial slices of a case.
        max_slices: Most axial slices of a case.
        noise_hu: Standard deviation of the Gaussian noise (HU).
    """

    seed: int = 0
    n_train: int = 6
    n_test: int = 4
    size: int = 96
    min_slices: int = 16
    max_slices: int = 24
    noise_hu: float = 12.0

    def __post_init__(self) -> None:
        check(
            1 <= self.n_train <= len(SYNAPSE_TRAIN_CASES),
            "n_train",
            f"must be in 1..{len(SYNAPSE_TRAIN_CASES)}, got {self.n_train}",
        )
        check(
            1 <= self.n_test <= len(SYNAPSE_TEST_CASES),
            "n_test",
            f"must be in 1..{len(SYNAPSE_TEST_CASES)}, got {self.n_test}",
        )
        check(self.size >= 32, "size", f"must be at least 32, got {self.size}")
        check(self.min_slices >= 4, "min_slices", f"must be at least 4, got {self.min_slices}")
        check(
            self.max_slices >= self.min_slices,
            "max_slices",
            f"must be >= min_slices ({self.min_slices}), got {self.max_slices}",
        )
        check(self.noise_hu >= 0, "noise_hu", f"must be >= 0, got {self.noise_hu}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def case_ids(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(train ids, test ids) written."""
        return _spread(SYNAPSE_TRAIN_CASES, self.n_train), _spread(SYNAPSE_TEST_CASES, self.n_test)


@dataclass(frozen=True)
class AcdcPhantomConfig:
    """Synthetic ACDC cine MR (``params.yaml``: datasets.acdc.phantoms).

    Attributes:
        seed: Base seed; patient ``n`` uses ``default_rng([seed, 1000 + n])``.
        n_train: Patients taken from MT-UNet's 70 training ids (spread evenly).
        n_val: Patients taken from the 10 validation ids.
        n_test: Patients taken from the 20 test ids.
        size: In-plane size H = W in voxels.
        min_slices: Fewest short-axis slices.
        max_slices: Most short-axis slices.
        n_frames: Frames of the cine (``NbFrame``); ED is frame 1.
        noise: Rician noise level relative to the blood intensity.
    """

    seed: int = 0
    n_train: int = 8
    n_val: int = 2
    n_test: int = 4
    size: int = 96
    min_slices: int = 8
    max_slices: int = 10
    n_frames: int = 12
    noise: float = 0.14

    def __post_init__(self) -> None:
        check(
            1 <= self.n_train <= len(ACDC_TRAIN_DEFAULT),
            "n_train",
            f"must be in 1..{len(ACDC_TRAIN_DEFAULT)}, got {self.n_train}",
        )
        check(
            0 <= self.n_val <= len(ACDC_VAL_PATIENTS),
            "n_val",
            f"must be in 0..{len(ACDC_VAL_PATIENTS)}, got {self.n_val}",
        )
        check(
            1 <= self.n_test <= len(ACDC_TEST_PATIENTS),
            "n_test",
            f"must be in 1..{len(ACDC_TEST_PATIENTS)}, got {self.n_test}",
        )
        check(self.size >= 32, "size", f"must be at least 32, got {self.size}")
        check(self.min_slices >= 3, "min_slices", f"must be at least 3, got {self.min_slices}")
        check(
            self.max_slices >= self.min_slices,
            "max_slices",
            f"must be >= min_slices ({self.min_slices}), got {self.max_slices}",
        )
        check(self.n_frames >= 4, "n_frames", f"must be at least 4, got {self.n_frames}")
        check(self.noise >= 0, "noise", f"must be >= 0, got {self.noise}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def patient_ids(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(train, val, test) patient numbers written."""
        return (
            _spread(ACDC_TRAIN_DEFAULT, self.n_train),
            _spread(ACDC_VAL_PATIENTS, self.n_val),
            _spread(ACDC_TEST_PATIENTS, self.n_test),
        )


def _spread(ids: tuple[int, ...], n: int) -> tuple[int, ...]:
    """``n`` ids spread evenly over ``ids`` (all when n == len(ids))."""
    if n <= 0:
        return ()
    idx = np.unique(np.round(np.linspace(0, len(ids) - 1, n)).astype(int))
    return tuple(ids[i] for i in idx)


def phantom_config(
    name: str, d: Mapping[str, Any] | None = None
) -> SynapsePhantomConfig | AcdcPhantomConfig:
    """Phantom config of dataset ``name`` from a mapping (unknown keys raise ValueError)."""
    classes = {"synapse": SynapsePhantomConfig, "acdc": AcdcPhantomConfig}
    return from_dict_for(classes, name, d, "phantoms")


# --------------------------------------------------------------------------------------
# Shape helpers (normalised coordinates: z in [0, 1], h and w in [-1, 1])
# --------------------------------------------------------------------------------------


def _paint_ellipsoid(
    hu: np.ndarray | None,
    lab: np.ndarray | None,
    grids: tuple[np.ndarray, np.ndarray, np.ndarray],
    center: tuple[float, float, float],
    radii: tuple[float, float, float],
    value: float,
    label: int | None,
    wobble: tuple[float, int, float] = (0.0, 3, 0.0),
    bend: float = 0.0,
) -> None:
    """Set voxels inside a (wobbly, optionally bent) ellipsoid, in its bounding box only."""
    zc, hc, wc = grids
    cz, ch, cw = center
    rz, rh, rw = radii
    amp = wobble[0]
    pad = 1.0 + abs(amp) + 1e-3
    zs = np.flatnonzero(np.abs(zc - cz) <= rz * pad)
    hs = np.flatnonzero(np.abs(hc - ch) <= rh * pad + abs(bend))
    ws = np.flatnonzero(np.abs(wc - cw) <= rw * pad)
    if not (zs.size and hs.size and ws.size):
        return
    z = zc[zs][:, None, None]
    w = wc[ws][None, None, :]
    h = hc[hs][None, :, None] - bend * ((w - cw) / rw) ** 2  # a banana (pancreas, stomach)
    dz, dh, dw = (z - cz) / rz, (h - ch) / rh, (w - cw) / rw
    dist = dz**2 + dh**2 + dw**2
    if amp:
        theta = np.arctan2(dh, dw)
        dist = dist * (1.0 + amp * np.sin(wobble[1] * theta + wobble[2]))
    inside = dist < 1.0
    box = (slice(zs[0], zs[-1] + 1), slice(hs[0], hs[-1] + 1), slice(ws[0], ws[-1] + 1))
    if hu is not None:
        hu[box][inside] = value
    if lab is not None and label is not None:
        lab[box][inside] = label


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled linearly."""
    from scipy import ndimage

    coarse = rng.uniform(-1, 1, size=tuple(max(2, s // scale + 2) for s in shape))
    factors = [s / c for s, c in zip(shape, coarse.shape, strict=True)]
    out = ndimage.zoom(coarse, factors, order=1, mode="nearest")
    return out[tuple(slice(0, s) for s in shape)].astype(np.float32)


# --------------------------------------------------------------------------------------
# Synapse-like CT
# --------------------------------------------------------------------------------------

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
        _paint_ellipsoid(hu, lab, grids, (0.5, 0.02, 0.0), (5.0, rh_, rw_), val, None)
    _paint_ellipsoid(hu, lab, grids, (0.5, 0.52, 0.0), (5.0, 0.11, 0.12), 500.0, None)  # spine
    for side in (-1, 1):  # paraspinal muscles
        _paint_ellipsoid(hu, lab, grids, (0.5, 0.52, 0.24 * side), (5.0, 0.12, 0.12), 50.0, None)
    # Bowel loops (background label) at organ-like intensities, low in the abdomen.
    for _ in range(int(rng.integers(6, 10))):
        c = (rng.uniform(0.0, 0.55), rng.uniform(-0.45, 0.15), rng.uniform(-0.55, 0.55))
        r = (rng.uniform(0.08, 0.2), rng.uniform(0.06, 0.12), rng.uniform(0.06, 0.12))
        val = float(rng.choice([20.0, 45.0, 100.0, 110.0]) + rng.normal(0, 5))
        _paint_ellipsoid(hu, lab, grids, c, r, val, 0, (0.15, 3, rng.uniform(0, 6.28)))
    for organ, center, radii, value, amp, bend in _SYNAPSE_ORGANS:
        c = tuple(x + rng.uniform(-0.03, 0.03) for x in center)
        r = tuple(x * rng.uniform(0.88, 1.12) for x in radii)
        wob = (amp * rng.uniform(0.5, 1.0), int(rng.integers(2, 5)), rng.uniform(0, 6.28))
        _paint_ellipsoid(hu, lab, grids, c, r, value + rng.normal(0, 6), organ, wob, bend)  # type: ignore[arg-type]
        if organ == 7:  # air pocket in the anterior stomach, still labelled stomach
            pc = (c[0], c[1] - 0.6 * r[1], c[2])
            pr = (r[0] * 0.5, r[1] * 0.3, r[2] * 0.5)
            pocket = np.zeros_like(lab)
            _paint_ellipsoid(None, pocket, grids, pc, pr, 0.0, 1)
            hu[(pocket == 1) & (lab == 7)] = -800.0
    hu += 8.0 * _smooth_noise(rng, hu.shape, 8) + rng.normal(0, cfg.noise_hu, size=hu.shape).astype(
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


# --------------------------------------------------------------------------------------
# ACDC-like cine MR
# --------------------------------------------------------------------------------------


def _acdc_shape_params(group: str, rng: np.random.Generator) -> dict[str, float]:
    """Per-patient heart sizes in normalised units (1.0 = half the field of view).

    At 96 x 96 (about 4 mm pixels, like ACDC's ~1.5 mm at 256) an ED LV cavity of about
    5 cm is 0.14 and a myocardium of 8 to 10 mm is 0.05: two to three pixels.
    """
    p = {
        "lv": 0.14 * rng.uniform(0.9, 1.1),  # LV cavity radius at the base (ED)
        "myo": 0.042 * rng.uniform(0.9, 1.1),  # wall thickness (ED)
        "rv": 1.0 * rng.uniform(0.7, 1.4),  # RV crescent width factor
        "contract": 0.62 * rng.uniform(0.95, 1.05),  # ES / ED cavity radius
        "thicken": 1.35,  # ES / ED wall thickness
        "rv_contract": 0.55 * rng.uniform(0.9, 1.1),  # ES / ED RV crescent width
    }
    if group == "DCM":
        p.update(lv=p["lv"] * 1.3, contract=0.9, thicken=1.1, myo=p["myo"] * 0.8)
    elif group == "HCM":
        p.update(myo=p["myo"] * 1.6, lv=p["lv"] * 0.85, contract=0.5)
    elif group == "MINF":
        p.update(contract=0.82, thicken=1.15)
    elif group == "RV":
        p.update(rv=p["rv"] * 1.4, rv_contract=0.8)
    return p


#: Mean signal of each tissue (arbitrary MR units); blood and myocardium are close, as in
#: cine SSFP at a coil's edge, and fat is as bright as blood.
_ACDC_SIGNAL = {
    "body": 120.0,
    "fat": 240.0,
    "lung": 25.0,
    "liver": 140.0,
    "pericardium": 200.0,
    "blood": 200.0,
    "myo": 135.0,
    "scar": 95.0,
}


def acdc_frame(
    cfg: AcdcPhantomConfig,
    anatomy: dict[str, Any],
    phase: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One cine frame (Z, H, W): ``phase`` 0 = end-diastole, 1 = end-systole.

    The short-axis stack runs from the base (slice 0) to the apex. What makes real ACDC
    hard is drawn in: a myocardium two to three pixels thick, the RV a crescent wrapped
    around the septum, basal slices where the ring opens into the outflow tract, apical
    slices where the LV cavity and then the RV vanish, trabeculae and papillary muscles
    inside the cavity (labelled LV, as in ACDC), partial-volume blur at every border
    (drawn at 3x resolution and averaged down), a coil bias field and Rician noise.

    Returns:
        ``(intensity int16 (Z, H, W), label uint8 (Z, H, W))`` (0 bg, 1 RV, 2 myo, 3 LV).
    """
    n, nz = cfg.size, anatomy["nz"]
    p = anatomy["params"]
    sig = _ACDC_SIGNAL
    up = 3  # supersampling: the image is the mean of 3 x 3 sub-pixels (partial volume)
    g = (np.arange(n * up) + 0.5) / (n * up) * 2.0 - 1.0
    hh, ww = np.meshgrid(g, g, indexing="ij")
    lv_r0 = p["lv"] * (1 - phase * (1 - p["contract"]))
    myo_t = p["myo"] * (1 + phase * (p["thicken"] - 1))
    rv_w = p["rv"] * (1 - phase * (1 - p["rv_contract"]))
    ch, cw = anatomy["center"]
    a = anatomy["angle"]
    dh, dw = hh - ch, ww - cw
    rh, rw = np.cos(a) * dh - np.sin(a) * dw, np.sin(a) * dh + np.cos(a) * dw
    theta = np.arctan2(rh, rw)
    body = (hh / 0.85) ** 2 + (ww / 0.95) ** 2 < 1
    fat = body & ~((hh / 0.8) ** 2 + (ww / 0.9) ** 2 < 1)
    lungs = np.zeros_like(body)
    for side in (-1, 1):
        lungs |= ((hh + 0.15) / 0.5) ** 2 + ((ww - 0.55 * side) / 0.3) ** 2 < 1
    liver = ((hh - 0.7) / 0.3) ** 2 + ((ww + 0.4) / 0.45) ** 2 < 1
    trab = anatomy["trabeculae"]
    img = np.zeros((nz, n, n), dtype=np.float32)
    lab = np.zeros((nz, n, n), dtype=np.uint8)
    for z in range(nz):
        t = z / max(nz - 1, 1)  # 0 base .. 1 apex
        taper = np.sqrt(max(1.0 - 0.8 * t**2, 0.05))
        # The cavity closes towards the apex; the last slice is a myocardial cap.
        lv_r = lv_r0 * taper * (1.0 if t < 0.75 else max(0.0, (1.0 - t) / 0.25))
        r_epi = lv_r0 * taper + myo_t
        # An irregular (trabeculated) endocardium: the radius wobbles with the angle.
        dist = np.sqrt(rh**2 + (rw / (1.0 + 0.08 * phase)) ** 2)
        wobble = 1.0 + anatomy["wobble"][0] * np.sin(anatomy["wobble"][1] * theta + z)
        dist_endo = dist / wobble
        sl = np.full(hh.shape, 0.0, dtype=np.float32)
        sl[body] = sig["body"]
        sl[fat] = sig["fat"]
        sl[lungs & body] = sig["lung"]
        sl[liver & body] = sig["liver"]
        sl[dist < r_epi + 0.025] = sig["pericardium"]
        # RV: a crescent on the septal side, hugging the LV, shorter than the LV.
        rv = np.zeros_like(body)
        if t < anatomy["rv_end"]:
            # The crescent sits at a patient-specific angle around the LV.
            b_ = anatomy["rv_angle"]
            qh, qw = np.cos(b_) * rh - np.sin(b_) * rw, np.sin(b_) * rh + np.cos(b_) * rw
            reach = r_epi + 0.09 * rv_w * (1.0 - 0.6 * t)
            outer = (qh / (1.25 * reach)) ** 2 + ((qw + 0.35 * reach) / reach) ** 2 < 1
            rv = outer & (dist > r_epi + 0.012) & (qw < 0.25 * r_epi)
            # The RV free wall: a thin, unlabelled muscle line, then epicardial fat as
            # bright as blood, so the outer border shows only as that thin dark line.
            rim = (qh / (1.25 * reach + 0.05)) ** 2 + (
                (qw + 0.35 * reach) / (reach + 0.05)
            ) ** 2 < 1
            wall = (qh / (1.25 * reach + 0.02)) ** 2 + (
                (qw + 0.35 * reach) / (reach + 0.02)
            ) ** 2 < 1
            sl[rim & ~rv & (qw < 0.25 * r_epi) & ~(dist < r_epi)] = sig["pericardium"]
            sl[wall & ~rv & (qw < 0.25 * r_epi) & ~(dist < r_epi)] = sig["myo"]
        myo = (dist < r_epi) & (dist_endo >= lv_r)
        lv = (dist_endo < lv_r) & (dist < r_epi)
        if t < 0.15:  # basal slices: the ring opens into the outflow tract
            gap = (theta > anatomy["outflow"]) & (theta < anatomy["outflow"] + 0.9)
            outflow = gap & (dist < r_epi)
            myo &= ~gap
            sl[outflow] = sig["blood"]  # blood outside the labelled cavity
            # An atrium cut at the base: blood as bright as the ventricles, not labelled.
            ah, aw = anatomy["atrium"]
            atrium = ((rh - ah * r_epi) / (0.9 * r_epi)) ** 2 + ((rw - aw * r_epi) / r_epi) ** 2 < 1
            sl[atrium & ~(dist < r_epi)] = sig["blood"]
        sl[rv] = sig["blood"]
        sl[myo] = sig["myo"]
        if anatomy["group"] == "MINF":  # a thinned scar segment, darker
            sl[myo & (theta > 1.0) & (theta < 1.8)] = sig["scar"]
        sl[lv] = sig["blood"]
        # Trabeculae and papillary muscles: muscle-dark spots in the cavity, labelled LV.
        for ang, rad, size in trab:
            if lv_r > 0:
                ph_, pw_ = np.sin(ang) * rad * lv_r, np.cos(ang) * rad * lv_r
                spot = (rh - ph_) ** 2 + (rw - pw_) ** 2 < (size * lv_r) ** 2
                sl[spot & lv] = sig["myo"] * 1.05
        lab_hi = np.zeros(hh.shape, dtype=np.uint8)
        lab_hi[rv] = 1
        lab_hi[myo] = 2
        lab_hi[lv] = 3
        img[z] = sl.reshape(n, up, n, up).mean(axis=(1, 3))
        lab[z] = lab_hi[up // 2 :: up, up // 2 :: up]  # the label at each pixel's centre
    img = img * anatomy["bias"][None]
    sigma = cfg.noise * sig["blood"]
    real = img + rng.normal(0, sigma, size=img.shape).astype(np.float32)
    imag = rng.normal(0, sigma, size=img.shape).astype(np.float32)
    mag = np.sqrt(real**2 + imag**2)  # Rician magnitude
    return np.clip(np.round(mag), 0, 32767).astype(np.int16), lab


def acdc_patient(cfg: AcdcPhantomConfig, patient: int) -> dict[str, Any]:
    """All frames of one synthetic patient.

    Returns:
        Dict with ``cine`` int16 (T, Z, H, W), ``labels`` uint8 (T, Z, H, W), ``ed``,
        ``es`` (1-based frame numbers), ``group``, ``height``, ``weight``, ``spacing``
        (z, y, x) mm.
    """
    rng = np.random.default_rng([cfg.seed, 1000 + patient])
    group = ACDC_GROUPS[patient % len(ACDC_GROUPS)]
    nz = int(rng.integers(cfg.min_slices, cfg.max_slices + 1))
    n = cfg.size
    yy, xx = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    gh, gw = rng.uniform(-0.25, 0.25, size=2)
    bias = (1.0 + gh * yy + gw * xx + 0.1 * _smooth_noise(rng, (n, n), max(n // 4, 2))).astype(
        np.float32
    )
    anatomy = {
        "nz": nz,
        "group": group,
        "params": _acdc_shape_params(group, rng),
        "center": (rng.uniform(-0.12, 0.02), rng.uniform(0.0, 0.15)),
        "angle": rng.uniform(-0.35, 0.35),
        "bias": bias,
        "outflow": rng.uniform(-2.6, -1.6),
        "wobble": (rng.uniform(0.05, 0.12), int(rng.integers(5, 9))),
        "rv_angle": rng.uniform(-0.4, 0.4),
        "rv_end": rng.uniform(0.65, 0.9),  # where the RV stops towards the apex
        "atrium": (rng.uniform(-1.6, -1.0), rng.uniform(0.6, 1.4)),
        # (angle, distance from the centre, radius) in units of the cavity radius: two
        # papillary muscles and a few trabeculae along the wall.
        "trabeculae": [
            (rng.uniform(0.4, 1.0), 0.55, 0.22),
            (rng.uniform(1.9, 2.6), 0.55, 0.2),
            *[(rng.uniform(-np.pi, np.pi), 0.85, 0.1) for _ in range(int(rng.integers(3, 7)))],
        ],
    }
    t_frames = cfg.n_frames
    es = int(np.clip(round(t_frames * rng.uniform(0.3, 0.45)) + 1, 2, t_frames))
    frames, labels = [], []
    for t in range(1, t_frames + 1):
        if t <= es:
            phase = (1 - np.cos(np.pi * (t - 1) / max(es - 1, 1))) / 2
        else:
            phase = (1 + np.cos(np.pi * (t - es) / (t_frames + 1 - es))) / 2
        img, lab = acdc_frame(cfg, anatomy, float(phase), rng)
        frames.append(img)
        labels.append(lab)
    dxy = float(1.5625 * 256 / n * rng.uniform(0.9, 1.1))
    dz = float(rng.choice([5.0, 6.5, 10.0]))
    return {
        "cine": np.stack(frames),
        "labels": np.stack(labels),
        "ed": 1,
        "es": es,
        "group": group,
        "height": round(float(rng.uniform(150, 195)), 1),
        "weight": round(float(rng.uniform(50, 110)), 1),
        "spacing": (dz, dxy, dxy),
    }


def write_acdc_phantoms(cfg: AcdcPhantomConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write ``training/patientXXX/`` folders (Info.cfg, _4d, frameNN, frameNN_gt)."""
    out = Path(out_dir)
    train, val, test = cfg.patient_ids()
    patients = {}
    for num in sorted(train + val + test):
        pat = acdc_patient(cfg, num)
        name = patient_name(num)
        folder = out / "training" / name
        dz, dy, dx = pat["spacing"]
        affine = np.diag([dx, dy, dz, 1.0])
        # Stored (X=W, Y=H, Z) as the ACDC files are; "voxel" orientation reads it back.
        cine = pat["cine"].transpose(3, 2, 1, 0)  # (T, Z, H, W) -> (W, H, Z, T)
        save_nifti(folder / f"{name}_4d.nii.gz", cine, affine)
        for frame in (pat["ed"], pat["es"]):
            save_nifti(folder / f"{name}_frame{frame:02d}.nii.gz", cine[..., frame - 1], affine)
            gt = pat["labels"][frame - 1].transpose(2, 1, 0)
            save_nifti(folder / f"{name}_frame{frame:02d}_gt.nii.gz", gt, affine)
        info = (
            f"ED: {pat['ed']}\nES: {pat['es']}\nGroup: {pat['group']}\n"
            f"Height: {pat['height']}\nNbFrame: {cfg.n_frames}\nWeight: {pat['weight']}\n"
        )
        write_text(folder / "Info.cfg", info)
        patients[name] = {
            "ED": pat["ed"],
            "ES": pat["es"],
            "group": pat["group"],
            "shape": list(pat["cine"].shape[1:]),
            "spacing": list(pat["spacing"]),
        }
    summary = {
        "name": "acdc",
        "config": cfg.to_dict(),
        "train_patients": [patient_name(p) for p in train],
        "val_patients": [patient_name(p) for p in val],
        "test_patients": [patient_name(p) for p in test],
        "patients": patients,
    }
    write_json(out / "phantoms.json", summary)
    return summary


def write_phantoms(
    name: str,
    cfg: SynapsePhantomConfig | AcdcPhantomConfig | Mapping[str, Any] | None,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Write the synthetic raw dataset ``name`` (``"synapse"`` / ``"acdc"``) to ``out_dir``.

    Args:
        name: Dataset.
        cfg: Its phantom config (or a mapping / None for :func:`phantom_config`).
        out_dir: Root of the raw layout (e.g. ``data/raw/synapse``).

    Returns:
        The summary also written to ``out_dir/phantoms.json`` (ids per split, shapes,
        spacings).
    """
    if cfg is None or isinstance(cfg, Mapping):
        cfg = phantom_config(name, cfg)
    if name == "synapse" and isinstance(cfg, SynapsePhantomConfig):
        return write_synapse_phantoms(cfg, out_dir)
    if name == "acdc" and isinstance(cfg, AcdcPhantomConfig):
        return write_acdc_phantoms(cfg, out_dir)
    raise ValueError(f"dataset: {name!r} does not match config {type(cfg).__name__}")


__all__ = [
    "AcdcPhantomConfig",
    "SynapsePhantomConfig",
    "acdc_patient",
    "phantom_config",
    "synapse_case",
    "write_acdc_phantoms",
    "write_phantoms",
    "write_synapse_phantoms",
]
