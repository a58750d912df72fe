"""ACDC-like cine MR phantoms in the raw release layout.

``training/patientXXX/`` with ``Info.cfg``, ``_4d``, ``frameNN``, ``frameNN_gt``: short-axis
stacks (base to apex) with RV, myocardium and LV, a contraction cycle over ``n_frames`` (ES:
smaller cavities, thicker myocardium), the five ACDC groups (NOR, MINF, DCM, HCM, RV) changing
sizes and contraction, a chest with lungs, liver and bright fat (as bright as blood), a
smooth multiplicative bias field and Rician noise. RV and LV blood share one intensity, and
the myocardium is only two to three pixels thick at 96 x 96; the RV is a crescent around the
septum, basal rings open into the outflow tract, apical cavities close, trabeculae and
papillary muscles sit in the LV cavity, and every border is blurred by partial volume (see
:func:`acdc_frame`).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.data.acdc import patient_name
from mtunet.data.nifti import save_nifti
from mtunet.data.synthetic.config import AcdcPhantomConfig
from mtunet.data.synthetic.shapes import smooth_noise
from mtunet.fileio import write_json, write_text

ACDC_GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")


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


_UP = 3  # supersampling: the image is the mean of 3 x 3 sub-pixels (partial volume)


def _slice_grid(n: int, anatomy: dict[str, Any]) -> dict[str, np.ndarray]:
    """What every slice of a patient shares, at the supersampled resolution (n*3, n*3).

    Returns:
        ``rh``, ``rw``: float64 coordinates in the heart's rotated frame; ``theta``: the angle
        around the heart's centre; ``body``: bool mask of the body; ``chest``: float32 signal
        of the body, fat, lungs and liver, the background every slice starts from.
    """
    sig = _ACDC_SIGNAL
    g = (np.arange(n * _UP) + 0.5) / (n * _UP) * 2.0 - 1.0
    hh, ww = np.meshgrid(g, g, indexing="ij")
    ch, cw = anatomy["center"]
    a = anatomy["angle"]
    dh, dw = hh - ch, ww - cw
    rh, rw = np.cos(a) * dh - np.sin(a) * dw, np.sin(a) * dh + np.cos(a) * dw
    body = (hh / 0.85) ** 2 + (ww / 0.95) ** 2 < 1
    fat = body & ~((hh / 0.8) ** 2 + (ww / 0.9) ** 2 < 1)
    lungs = np.zeros_like(body)
    for side in (-1, 1):
        lungs |= ((hh + 0.15) / 0.5) ** 2 + ((ww - 0.55 * side) / 0.3) ** 2 < 1
    liver = ((hh - 0.7) / 0.3) ** 2 + ((ww + 0.4) / 0.45) ** 2 < 1
    chest = np.full(hh.shape, 0.0, dtype=np.float32)
    chest[body] = sig["body"]
    chest[fat] = sig["fat"]
    chest[lungs & body] = sig["lung"]
    chest[liver & body] = sig["liver"]
    return {"rh": rh, "rw": rw, "theta": np.arctan2(rh, rw), "body": body, "chest": chest}


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
    up = _UP
    grid = anatomy.get("grid") or _slice_grid(n, anatomy)
    rh, rw, theta, body = grid["rh"], grid["rw"], grid["theta"], grid["body"]
    lv_r0 = p["lv"] * (1 - phase * (1 - p["contract"]))
    myo_t = p["myo"] * (1 + phase * (p["thicken"] - 1))
    rv_w = p["rv"] * (1 - phase * (1 - p["rv_contract"]))
    trab = anatomy["trabeculae"]
    # The same at every level of the stack: the cavity's stretched distance map.
    dist = np.sqrt(rh**2 + (rw / (1.0 + 0.08 * phase)) ** 2)
    img = np.zeros((nz, n, n), dtype=np.float32)
    lab = np.zeros((nz, n, n), dtype=np.uint8)
    for z in range(nz):
        t = z / max(nz - 1, 1)  # 0 base .. 1 apex
        taper = np.sqrt(max(1.0 - 0.8 * t**2, 0.05))
        # The cavity closes towards the apex; the last slice is a myocardial cap.
        lv_r = lv_r0 * taper * (1.0 if t < 0.75 else max(0.0, (1.0 - t) / 0.25))
        r_epi = lv_r0 * taper + myo_t
        # An irregular (trabeculated) endocardium: the radius wobbles with the angle.
        wobble = 1.0 + anatomy["wobble"][0] * np.sin(anatomy["wobble"][1] * theta + z)
        dist_endo = dist / wobble
        sl = grid["chest"].copy()
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
        lab_hi = np.zeros(rh.shape, dtype=np.uint8)
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
    bias = (1.0 + gh * yy + gw * xx + 0.1 * smooth_noise(rng, (n, n), max(n // 4, 2))).astype(
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
    anatomy["grid"] = _slice_grid(n, anatomy)  # drawn once, not in every frame
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


def _write_patient(cfg: AcdcPhantomConfig, num: int, out: Path) -> dict[str, Any]:
    """Draw and write ``training/patientXXX/``; its entry of ``phantoms.json``."""
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
    return {
        "ED": pat["ed"],
        "ES": pat["es"],
        "group": pat["group"],
        "shape": list(pat["cine"].shape[1:]),
        "spacing": list(pat["spacing"]),
    }


def write_acdc_phantoms(
    cfg: AcdcPhantomConfig, out_dir: str | Path, workers: int | None = None
) -> dict[str, Any]:
    """Write ``training/patientXXX/`` folders (Info.cfg, _4d, frameNN, frameNN_gt).

    Args:
        cfg: The phantoms' config.
        out_dir: Root of the raw layout.
        workers: Processes drawing patients at once (None: one per CPU core). Each patient
            draws from its own seed, so the files are the same bytes for any count.
    """
    out = Path(out_dir)
    train, val, test = cfg.patient_ids()
    nums = sorted(train + val + test)
    workers = min(len(nums), workers or os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            entries = list(pool.map(_write_patient, repeat(cfg), nums, repeat(out)))
    else:
        entries = [_write_patient(cfg, num, out) for num in nums]
    summary = {
        "name": "acdc",
        "config": cfg.to_dict(),
        "train_patients": [patient_name(p) for p in train],
        "val_patients": [patient_name(p) for p in val],
        "test_patients": [patient_name(p) for p in test],
        "patients": {patient_name(n): e for n, e in zip(nums, entries, strict=True)},
    }
    write_json(out / "phantoms.json", summary)
    return summary
