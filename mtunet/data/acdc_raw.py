"""ACDC as the challenge distributes it (NIfTI per frame, ``Info.cfg`` per patient) to a
dataset folder with ``dataset.json``.

Input: ``training/patientXXX/`` with ``Info.cfg`` (the folder may also be
``database/training`` or hold the patient folders directly):

- ED and ES frame numbers from ``Info.cfg``; reads ``patientXXX_frameNN.nii.gz`` and
  ``patientXXX_frameNN_gt.nii.gz`` (``.nii`` too); the 4-D cine is ignored;
- (Z, H, W) = stored voxel order reversed (``"voxel"`` orientation, the stack axis first;
  :mod:`mtunet.data.nifti`), per-volume min-max scaling to [0, 1] float32, labels 0-3
  (0 background, 1 RV, 2 myocardium, 3 LV), no resampling;
- split by patient (default MT-UNet's: 10 validation, 20 test patients, the other 70 of
  001-100 training); each patient gives two cases, ``patientXXX_ED`` and ``patientXXX_ES``.

Output: ``train_npz/patientXXX_ED_sliceNNN.npz``, ``val_npz/`` slices and ``val_vol_h5/``
volumes for validation, ``test_vol_h5/patientXXX_ED.npy.h5`` (with ``spacing`` and the
source geometry), ``lists_ACDC/{train,valid,test}.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.data import nifti
from mtunet.data.acdc_common import (
    ACDC_MAX_ID,
    AcdcConfig,
    cut_volume,
    missing_patients_error,
    patient_name,
)
from mtunet.data.common import (
    ACDC_CLASSES,
    check_image,
    check_labels,
    check_same_shape,
    normalize,
    write_h5,
)
from mtunet.data.manifest import (
    SplitStats,
    empty_split,
    prepare_out_dir,
    rel,
    remove_stale,
    write_list,
    write_manifest,
)

INFO_FIELDS = ("ED", "ES", "Group", "Height", "NbFrame", "Weight")
LAYOUT = (
    "Raw ACDC holds one folder per patient, training/patientXXX/ (or database/training/, or "
    "the patient folders directly), with Info.cfg (its ED: and ES: frame numbers) and "
    "patientXXX_frameYY.nii.gz plus patientXXX_frameYY_gt.nii.gz for both frames; "
    "preprocessed copies are read too: MT-UNet's release (lists_ACDC/) and SSL4MIS's "
    "data/*.h5 (see docs/data.md)."
)

_PATIENT_RE = re.compile(r"^patient(\d{3})$")
_OUT_DIRS = ("train_npz", "val_npz", "val_vol_h5", "test_vol_h5")


def read_info(path: Path) -> dict[str, str]:
    """Parse ``Info.cfg`` (``key: value`` lines).

    Raises:
        FileNotFoundError: Missing file.
        ValueError: No ED or ES entry, or ED/ES not a positive integer.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Info.cfg not found")
    info: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    for key in ("ED", "ES"):
        if key not in info:
            raise ValueError(f"{path}: no {key} entry (expected a line '{key}: <frame number>')")
        if not info[key].isdigit() or int(info[key]) < 1:
            raise ValueError(f"{path}: {key} must be a positive frame number, got {info[key]!r}")
    return info


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in nifti.NIFTI_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def find_patients(raw_dir: Path) -> dict[int, Path]:
    """Patient number -> folder of a raw ACDC tree.

    Raises:
        FileNotFoundError: ``raw_dir`` missing. ValueError: no patient folders (empty input).
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    for base in (raw_dir / "training", raw_dir / "database" / "training", raw_dir):
        if not base.is_dir():
            continue
        found = {
            int(m.group(1)): p
            for p in sorted(base.iterdir())
            if p.is_dir() and (m := _PATIENT_RE.match(p.name))
        }
        if found:
            return found
    raise ValueError(
        f"{raw_dir}: empty input folder: no patientXXX folders in training/, "
        "database/training/ or the folder itself"
    )


def load_frame(
    folder: Path, patient: int, frame: int, orientation: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, nifti.Geometry, Path]:
    """Read one frame and its ground truth.

    Returns:
        ``(image float32 (Z, H, W) in [0, 1], label uint8 (Z, H, W), raw image, geometry,
        image path)``.

    Raises:
        FileNotFoundError: Missing image or label. ValueError: shape mismatch, non-finite
            intensities, labels outside 0..3, unreadable file.
    """
    stem = f"{patient_name(patient)}_frame{frame:02d}"
    img_path, gt_path = _find_nifti(folder, stem), _find_nifti(folder, f"{stem}_gt")
    if img_path is None and gt_path is None:
        raise FileNotFoundError(
            f"{folder}: frame {frame} listed in Info.cfg but {stem}.nii.gz "
            "and its _gt are not on disk"
        )
    if gt_path is None:
        raise FileNotFoundError(f"{img_path}: image without a label (no {stem}_gt.nii.gz)")
    if img_path is None:
        raise FileNotFoundError(f"{gt_path}: label without an image (no {stem}.nii.gz)")
    img = nifti.read_volume(img_path, orientation)  # type: ignore[arg-type]
    lab = nifti.read_volume(gt_path, orientation)  # type: ignore[arg-type]
    check_same_shape(img.geometry.source_shape, lab.geometry.source_shape, img_path, gt_path)
    check_same_shape(img.image.shape, lab.image.shape, img_path, gt_path)
    check_image(img.image, img_path)
    label = check_labels(lab.image, ACDC_MAX_ID, gt_path).astype(np.uint8)
    return normalize(img.image, {"kind": "minmax"}), label, img.image, img.geometry, img_path


def preprocess_raw(cfg: AcdcConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Raw ACDC -> slices, volumes, lists and dataset.json in ``out_dir`` (module doc)."""
    patients = find_patients(raw_dir)
    wanted = cfg.wanted()
    in_split = {p for ids in wanted.values() for p in ids}
    missing = sorted(in_split - set(patients))
    if missing and not cfg.allow_missing_cases:
        names = [patient_name(p) for p in sorted(patients)]
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        found = f"{len(names)} patient folders ({shown})"
        raise missing_patients_error(raw_dir, missing, len(in_split), found, LAYOUT)
    roles = {p: s for s, ids in wanted.items() for p in ids if p in patients}
    for split in ("train", "test"):
        if not any(s == split for s in roles.values()):
            raise ValueError(f"{raw_dir}: no {split} patient on disk")
    # Read every Info.cfg first: a malformed one fails before anything is written.
    infos = {p: read_info(patients[p] / "Info.cfg") for p in sorted(roles)}
    prepare_out_dir(out_dir)
    splits = {"train": empty_split(), "val": empty_split(), "test": empty_split()}
    patient_lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    stats = {s: SplitStats(len(ACDC_CLASSES)) for s in splits}
    written: set[Path] = set()
    for p in sorted(roles):
        split = roles[p]
        patient_lists[split].append(patient_name(p))
        for phase in cfg.phases:
            frame = int(infos[p][phase])
            image, label, raw, geom, img_path = load_frame(patients[p], p, frame, cfg.orientation)
            case = f"{patient_name(p)}_{phase}"
            stats[split].add_case(case, image, label, geom.spacing, raw=raw)
            splits[split]["cases"].append(case)
            if split in ("train", "val"):
                for path in cut_volume(case, image, label, out_dir / f"{split}_npz"):
                    written.add(path)
                    splits[split]["slices"].append(rel(path, out_dir))
            if split in ("val", "test"):
                path = out_dir / f"{split}_vol_h5" / f"{case}.npy.h5"
                attrs = {"spacing": np.asarray(geom.spacing, dtype=np.float64), **geom.to_attrs()}
                attrs["source_file"] = img_path.name
                attrs["frame"] = frame
                write_h5(path, {"image": image, "label": label}, attrs)
                written.add(path)
                splits[split]["volumes"].append(rel(path, out_dir))
    removed = remove_stale(out_dir, _OUT_DIRS, written)
    lists = out_dir / "lists_ACDC"
    stem = lambda p: Path(p).name.removesuffix(".npz").removesuffix(".npy.h5")  # noqa: E731
    write_list(lists / "train.txt", [stem(p) for p in splits["train"]["slices"]])
    write_list(lists / "valid.txt", [stem(p) for p in splits["val"]["slices"]])
    write_list(lists / "test.txt", splits["test"]["cases"])
    for split, names in patient_lists.items():
        splits[split]["patients"] = names
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "orientation": cfg.orientation,
        "frames": {patient_name(p): {k: infos[p].get(k) for k in INFO_FIELDS} for p in infos},
        "missing_cases": [patient_name(m) for m in missing],
        "unused_cases": [patient_name(p) for p in sorted(set(patients) - set(roles))],
        "removed_stale_files": removed,
        "lists_dir": "lists_ACDC",
    }
    return write_manifest(
        out_dir,
        name="acdc",
        source="raw",
        modality="MR",
        class_names=ACDC_CLASSES,
        preprocessing=cfg.preprocessing,
        splits=splits,
        stats=stats,
        source_info=info,
    )
