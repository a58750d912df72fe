"""ACDC cine MRI: the raw challenge release, MT-UNet's preprocessed release
(:mod:`mtunet.data.acdc_release`) or the SSL4MIS layout (:mod:`mtunet.data.acdc_ssl4mis`)
to a dataset folder with ``dataset.json``.

Entry point: ``preprocess_acdc(cfg: AcdcConfig, raw_dir, out_dir) -> dict``.

From raw NIfTI (``training/patientXXX/`` with ``Info.cfg``; the folder may also be
``database/training`` or hold the patient folders directly):

- ED and ES frame numbers from ``Info.cfg``; reads ``patientXXX_frameNN.nii.gz`` and
  ``patientXXX_frameNN_gt.nii.gz`` (``.nii`` too); the 4-D cine is ignored;
- (Z, H, W) = stored voxel order reversed (``"voxel"`` orientation, the stack axis first;
  :mod:`mtunet.data.nifti`), per-volume min-max scaling to [0, 1] float32, labels 0-3
  (0 background, 1 RV, 2 myocardium, 3 LV), no resampling;
- split by patient (default MT-UNet's: 10 validation, 20 test patients, the other 70 of
  001-100 training); each patient gives two cases, ``patientXXX_ED`` and ``patientXXX_ES``;
- writes ``train_npz/patientXXX_ED_sliceNNN.npz``, ``val_npz/`` slices and
  ``val_vol_h5/`` volumes for validation, ``test_vol_h5/patientXXX_ED.npy.h5`` (with
  ``spacing`` and the source geometry), ``lists_ACDC/{train,valid,test}.txt``.

The preprocessed layouts are validated and indexed in place (their modules say how);
``source: auto`` picks MT-UNet's release when ``lists_ACDC/`` exists, the SSL4MIS layout
when ``data/`` and one of its ``*.list`` files (or ``data/slices/``) exist, raw data
otherwise. Every layout gets
validation volumes when it has validation patients, so best-validation selection works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mtunet.config import check, from_dict, to_dict
from mtunet.data import nifti
from mtunet.data.common import (
    ACDC_CLASSES,
    check_image,
    check_labels,
    check_same_shape,
    normalize,
    write_h5,
    write_npz,
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

#: MT-UNet's validation and test patients (the other 70 of 001-100 train).
ACDC_VAL_PATIENTS: tuple[int, ...] = (19, 21, 29, 33, 41, 50, 61, 71, 76, 80)
ACDC_TEST_PATIENTS: tuple[int, ...] = (
    2, 3, 8, 9, 12, 14, 17, 24, 42, 48, 49, 53, 55, 64, 67, 79, 81, 88, 92, 95,
)  # fmt: skip
ACDC_ALL_PATIENTS: tuple[int, ...] = tuple(range(1, 101))
ACDC_MAX_ID = 3
INFO_FIELDS = ("ED", "ES", "Group", "Height", "NbFrame", "Weight")

_PATIENT_RE = re.compile(r"^patient(\d{3})$")
_OUT_DIRS = ("train_npz", "val_npz", "val_vol_h5", "test_vol_h5")


@dataclass(frozen=True)
class AcdcConfig:
    """How to build the ACDC dataset folder (``params.yaml``: datasets.acdc.preprocess).

    Attributes:
        source: ``"raw"``, ``"release"`` (MT-UNet's files), ``"ssl4mis"`` (SSL4MIS's
            ``data/*.h5`` and ``*.list`` files) or ``"auto"`` (release when ``lists_ACDC``
            exists, else SSL4MIS when ``data/`` exists with a ``*.list`` file or
            ``data/slices/``, else raw).
        split: SSL4MIS only: ``"mtunet"`` (default; by patient, the ``*_patients`` below)
            or ``"layout"`` (the layout's own ``train_slices.list`` / ``train.list``,
            ``val.list`` and ``test.list``). Raw data has no lists of its own, and
            MT-UNet's release is always indexed by its lists (which are MT-UNet's split).
        train_patients: Training patient numbers; empty (default) means every patient of
            001-100 not in validation or test (MT-UNet's 70).
        val_patients: Validation patients (MT-UNet's 10).
        test_patients: Test patients (MT-UNet's 20).
        phases: Cardiac phases used, from ``("ED", "ES")``.
        allow_missing_cases: Skip (and record) split patients not on disk instead of
            raising FileNotFoundError (for phantom sets holding a subset of patients).
        orientation: ``"voxel"`` (default; short-axis stacks) or ``"canonical"``.
        verify_release: Release and SSL4MIS: read and validate every indexed file (files
            the indexer writes, stacked or cut, are always validated).
    """

    source: Literal["auto", "raw", "release", "ssl4mis"] = "auto"
    split: Literal["mtunet", "layout"] = "mtunet"
    train_patients: tuple[int, ...] = ()
    val_patients: tuple[int, ...] = ACDC_VAL_PATIENTS
    test_patients: tuple[int, ...] = ACDC_TEST_PATIENTS
    phases: tuple[str, ...] = ("ED", "ES")
    allow_missing_cases: bool = False
    orientation: Literal["canonical", "voxel"] = "voxel"
    verify_release: bool = True

    def __post_init__(self) -> None:
        for name in ("train_patients", "val_patients", "test_patients"):
            ids = getattr(self, name)
            check(all(i > 0 for i in ids), name, f"patient numbers must be positive, got {ids}")
            check(len(set(ids)) == len(ids), name, f"duplicate patient numbers in {ids}")
        check(len(self.test_patients) > 0, "test_patients", "needs at least one patient")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = sorted(set(getattr(self, f"{a}_patients")) & set(getattr(self, f"{b}_patients")))
            check(not both, f"{b}_patients", f"patients {both} are also in {a}_patients")
        check(
            len(self.phases) > 0
            and set(self.phases) <= {"ED", "ES"}
            and len(set(self.phases)) == len(self.phases),
            "phases",
            f"must be distinct values from ['ED', 'ES'], got {list(self.phases)}",
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "preprocess") -> AcdcConfig:
        return from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "minmax"}

    def train_set(self) -> tuple[int, ...]:
        """Training patients (the default: 001-100 minus validation and test)."""
        if self.train_patients:
            return self.train_patients
        taken = set(self.val_patients) | set(self.test_patients)
        return tuple(p for p in ACDC_ALL_PATIENTS if p not in taken)


def patient_name(num: int) -> str:
    """``2`` -> ``"patient002"``."""
    return f"patient{num:03d}"


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
    wanted = {"train": cfg.train_set(), "val": cfg.val_patients, "test": cfg.test_patients}
    missing = sorted({p for ids in wanted.values() for p in ids} - set(patients))
    if missing and not cfg.allow_missing_cases:
        raise FileNotFoundError(
            f"{raw_dir}: {len(missing)} patients {[patient_name(m) for m in missing[:10]]}"
            f"{' ...' if len(missing) > 10 else ''} are in the split but not on disk "
            "(set allow_missing_cases: true to skip them)"
        )
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
                for z in range(image.shape[0]):
                    path = out_dir / f"{split}_npz" / f"{case}_slice{z:03d}.npz"
                    write_npz(path, {"image": image[z], "label": label[z]})
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


def preprocess_acdc(cfg: AcdcConfig, raw_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Build the ACDC dataset folder ``out_dir`` from ``raw_dir``.

    Args:
        cfg: :class:`AcdcConfig`.
        raw_dir: Raw challenge folder, MT-UNet's release or the SSL4MIS layout.
        out_dir: Output folder; ``dataset.json`` is written there last.

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.

    Raises:
        ValueError: ``split: layout`` on raw data (it has no lists), besides the errors of
            each layout's reader.
    """
    # Imported here: the layout modules build on this one (AcdcConfig, patient_name).
    from mtunet.data.acdc_release import index_release, is_release
    from mtunet.data.acdc_ssl4mis import index_ssl4mis, is_ssl4mis

    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    source = cfg.source
    if source == "auto":
        if is_release(raw_dir):
            source = "release"
        elif is_ssl4mis(raw_dir):
            source = "ssl4mis"
        else:
            source = "raw"
    if source == "raw" and cfg.split == "layout":
        raise ValueError(
            f"preprocess.split: 'layout' needs a layout with its own split lists (ssl4mis), "
            f"but {raw_dir} is raw ACDC; use split: mtunet"
        )
    if source == "release":
        return index_release(cfg, raw_dir, out_dir)
    if source == "ssl4mis":
        return index_ssl4mis(cfg, raw_dir, out_dir)
    return preprocess_raw(cfg, raw_dir, out_dir)
