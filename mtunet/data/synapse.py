"""Synapse multi-organ CT: the raw BTCV release or TransUNet's preprocessed release to a
dataset folder with ``dataset.json``.

Entry point: ``preprocess_synapse(cfg: SynapseConfig, raw_dir, out_dir) -> dict`` (the
manifest written to ``out_dir/dataset.json``).

From raw NIfTI (``RawData/Training/{img,label}/{img,label}XXXX.nii.gz``, also ``.nii``,
``Training/{img,label}``, ``{img,label}/`` or one flat folder holding both):

- read with nibabel (NIfTI scaling applied), reorient to (Z, H, W) ``"canonical"``
  (axial slices in the radiological view, see :mod:`mtunet.data.nifti`);
- clip HU to [hu_min, hu_max] = [-125, 275], scale to [0, 1], float32;
- map BTCV ids to the 8 organs: 8->1 aorta, 4->2 gallbladder, 3->3 kidney L, 2->4
  kidney R, 6->5 liver, 11->6 pancreas, 1->7 spleen, 7->8 stomach, all else -> 0;
- write ``train_npz/caseXXXX_sliceNNN.npz`` (``image`` float32 (H, W), ``label`` uint8)
  for training (and validation) cases, ``test_vol_h5/caseXXXX.npy.h5`` (``image``
  float32 (Z, H, W), ``label`` uint8, attrs ``spacing`` (z, y, x) mm plus the source
  geometry, :meth:`mtunet.data.nifti.Geometry.to_attrs`) for test cases,
  ``val_npz/`` + ``val_vol_h5/`` for validation cases, and ``lists_Synapse/{train.txt,
  test_vol.txt}`` (+ ``val.txt``, ``val_vol.txt``) in the published list format.

From the preprocessed release (``train_npz/``, ``test_vol_h5/`` and ``lists_Synapse/``
with ``train.txt`` / ``test_vol.txt``; lists also looked for in ``lists/lists_Synapse``
or ``cfg.lists_dir``, and derived from the folder contents when absent): every listed
file is checked (and with ``verify_release`` read and validated), then indexed in place
by a ``dataset.json`` in ``out_dir`` with paths relative to it. Nothing is rewritten.
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
    SYNAPSE_CLASSES,
    check_image,
    check_labels,
    check_same_shape,
    missing_cases_error,
    normalize,
    read_slice,
    read_volume,
    slice_case_name,
    volume_case_name,
    write_h5,
    write_npz,
)
from mtunet.data.manifest import (
    SplitStats,
    add_slice_stats,
    empty_split,
    prepare_out_dir,
    read_list,
    rel,
    remove_stale,
    write_list,
    write_manifest,
)

#: What a raw Synapse folder holds (for errors that find something else).
LAYOUT = (
    "A raw Synapse folder holds RawData/Training/img/imgXXXX.nii.gz and "
    "RawData/Training/label/labelXXXX.nii.gz (also .nii, or flat img/ and label/ folders), "
    "XXXX the case number; the published split trains on 18 cases and tests on 12."
)

#: The published 18 training and 12 test cases (TransUNet and successors).
SYNAPSE_TRAIN_CASES: tuple[int, ...] = (
    5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40,
)  # fmt: skip
SYNAPSE_TEST_CASES: tuple[int, ...] = (1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38)
#: BTCV label id -> 8-organ class id (others -> background).
BTCV_TO_SYNAPSE: dict[int, int] = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}
BTCV_MAX_ID = 13
_LUT = np.zeros(BTCV_MAX_ID + 1, dtype=np.uint8)
for _btcv, _cls in BTCV_TO_SYNAPSE.items():
    _LUT[_btcv] = _cls

_IMG_RE = re.compile(r"^img(\d+)\.nii(\.gz)?$")
_LABEL_RE = re.compile(r"^label(\d+)\.nii(\.gz)?$")
_OUT_DIRS = ("train_npz", "val_npz", "val_vol_h5", "test_vol_h5")


@dataclass(frozen=True)
class SynapseConfig:
    """How to build the Synapse dataset folder (``params.yaml``: datasets.synapse.preprocess).

    Attributes:
        source: ``"raw"`` (NIfTI), ``"release"`` (TransUNet's preprocessed files) or
            ``"auto"`` (release when ``train_npz`` or ``test_vol_h5`` exists, else raw).
        train_cases: Training case numbers (default: the published 18). Raw only.
        test_cases: Test case numbers (default: the published 12). Raw only.
        val_cases: Training cases moved to a validation split (default none, as published).
            From a release only their slices move (the release has no training volumes).
        allow_missing_cases: If False a listed case without files on disk is an error; if
            True it is skipped and recorded in ``source_info.missing_cases`` (for phantom
            sets holding a subset of the published cases).
        hu_min: Lower end of the CT window (HU).
        hu_max: Upper end of the CT window (HU).
        orientation: ``"canonical"`` or ``"voxel"`` (:mod:`mtunet.data.nifti`).
        lists_dir: Release only: folder of ``train.txt`` / ``test_vol.txt`` (relative to the
            input folder or absolute); empty: look in ``lists_Synapse`` and
            ``lists/lists_Synapse``.
        verify_release: Release only: read every file and validate it (else only check it
            exists).
    """

    source: Literal["auto", "raw", "release"] = "auto"
    train_cases: tuple[int, ...] = SYNAPSE_TRAIN_CASES
    test_cases: tuple[int, ...] = SYNAPSE_TEST_CASES
    val_cases: tuple[int, ...] = ()
    allow_missing_cases: bool = False
    hu_min: float = -125.0
    hu_max: float = 275.0
    orientation: Literal["canonical", "voxel"] = "canonical"
    lists_dir: str = ""
    verify_release: bool = True

    def __post_init__(self) -> None:
        for name in ("train_cases", "test_cases", "val_cases"):
            ids = getattr(self, name)
            check(all(i > 0 for i in ids), name, f"case numbers must be positive, got {ids}")
            check(len(set(ids)) == len(ids), name, f"duplicate case numbers in {ids}")
        check(len(self.train_cases) > 0, "train_cases", "needs at least one case")
        check(len(self.test_cases) > 0, "test_cases", "needs at least one case")
        both = sorted(set(self.train_cases) & set(self.test_cases))
        check(not both, "test_cases", f"cases {both} are also training cases")
        extra = sorted(set(self.val_cases) - set(self.train_cases))
        check(not extra, "val_cases", f"cases {extra} are not training cases")
        left = set(self.train_cases) - set(self.val_cases)
        check(bool(left), "val_cases", "would leave no training case")
        check(self.hu_max > self.hu_min, "hu_max", f"must exceed hu_min ({self.hu_min})")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "preprocess") -> SynapseConfig:
        return from_dict(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "ct_window", "hu_min": float(self.hu_min), "hu_max": float(self.hu_max)}


def case_name(num: int) -> str:
    """``5`` -> ``"case0005"``."""
    return f"case{num:04d}"


# --------------------------------------------------------------------------------------
# Raw NIfTI
# --------------------------------------------------------------------------------------


def find_raw_pairs(raw_dir: Path) -> dict[int, tuple[Path, Path]]:
    """Case number -> (image, label) NIfTI paths of a raw Synapse folder.

    Raises:
        FileNotFoundError: ``raw_dir`` missing, or an image without a label (or the reverse).
        ValueError: No ``img*.nii[.gz]`` anywhere (empty input), or a case stored twice.
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    candidates = [
        (raw_dir / "RawData" / "Training" / "img", raw_dir / "RawData" / "Training" / "label"),
        (raw_dir / "Training" / "img", raw_dir / "Training" / "label"),
        (raw_dir / "img", raw_dir / "label"),
        (raw_dir, raw_dir),
    ]
    found_dirs = next(
        (
            (img_dir, label_dir)
            for img_dir, label_dir in candidates
            if img_dir.is_dir() and any(_IMG_RE.match(p.name) for p in img_dir.iterdir())
        ),
        None,
    )
    if found_dirs is None:
        raise ValueError(
            f"{raw_dir}: empty input folder: no img*.nii(.gz) in RawData/Training/img, "
            "Training/img, img/ or the folder itself"
        )
    img_dir, label_dir = found_dirs

    def collect(folder: Path, pattern: re.Pattern[str]) -> dict[int, Path]:
        found: dict[int, Path] = {}
        if not folder.is_dir():
            return found
        for p in sorted(folder.iterdir()):
            m = pattern.match(p.name)
            if m and p.is_file():
                num = int(m.group(1))
                if num in found:
                    raise ValueError(f"{p}: case {num} is also stored as {found[num].name}")
                found[num] = p
        return found

    images, labels = collect(img_dir, _IMG_RE), collect(label_dir, _LABEL_RE)
    for num in sorted(set(images) - set(labels)):
        raise FileNotFoundError(
            f"{images[num]}: image without a label (expected {label_dir}/label{num:04d}.nii.gz)"
        )
    for num in sorted(set(labels) - set(images)):
        raise FileNotFoundError(
            f"{labels[num]}: label without an image (expected {img_dir}/img{num:04d}.nii.gz)"
        )
    return {n: (images[n], labels[n]) for n in sorted(images)}


def load_case(
    image_path: Path, label_path: Path, cfg: SynapseConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, nifti.Geometry]:
    """Read one raw case.

    Returns:
        ``(image float32 (Z, H, W) in [0, 1], label uint8 (Z, H, W) in 0..8,
        raw HU (Z, H, W), geometry of the image file)``.

    Raises:
        ValueError: Naming the file for shape mismatch, non-finite intensities, labels
            outside BTCV's 0..13, or an unreadable file.
    """
    img = nifti.read_volume(image_path, cfg.orientation)
    lab = nifti.read_volume(label_path, cfg.orientation)
    check_same_shape(img.geometry.source_shape, lab.geometry.source_shape, image_path, label_path)
    check_same_shape(img.image.shape, lab.image.shape, image_path, label_path)
    check_image(img.image, image_path)
    label = _LUT[check_labels(lab.image, BTCV_MAX_ID, label_path)]
    return normalize(img.image, cfg.preprocessing), label, img.image, img.geometry


def _resolve_split(
    cfg: SynapseConfig, on_disk: set[int], raw_dir: Path
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(train, val, test, missing) case numbers after checking they are on disk."""
    wanted = set(cfg.train_cases) | set(cfg.test_cases)
    missing = sorted(wanted - on_disk)
    if missing and not cfg.allow_missing_cases:
        found = f"{len(on_disk)} cases with an image and a label"
        raise missing_cases_error(
            raw_dir, [case_name(m) for m in missing], len(wanted), found, LAYOUT
        )
    val = [c for c in cfg.val_cases if c in on_disk]
    train = [c for c in cfg.train_cases if c in on_disk and c not in cfg.val_cases]
    test = [c for c in cfg.test_cases if c in on_disk]
    if not train:
        raise ValueError(f"{raw_dir}: none of the training cases {list(cfg.train_cases)} on disk")
    if not test:
        raise ValueError(f"{raw_dir}: none of the test cases {list(cfg.test_cases)} on disk")
    return sorted(train), sorted(val), sorted(test), missing


def preprocess_raw(cfg: SynapseConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Raw NIfTI -> slices, volumes, lists and dataset.json in ``out_dir`` (module doc)."""
    pairs = find_raw_pairs(raw_dir)
    train, val, test, missing = _resolve_split(cfg, set(pairs), raw_dir)
    prepare_out_dir(out_dir)
    splits = {"train": empty_split(), "val": empty_split(), "test": empty_split()}
    stats = {s: SplitStats(len(SYNAPSE_CLASSES)) for s in splits}
    written: set[Path] = set()
    roles = [(n, "train") for n in train] + [(n, "val") for n in val] + [(n, "test") for n in test]
    for num, split in sorted(roles):
        name = case_name(num)
        image, label, raw, geom = load_case(*pairs[num], cfg)
        stats[split].add_case(name, image, label, geom.spacing, raw=raw)
        splits[split]["cases"].append(name)
        if split in ("train", "val"):
            folder = out_dir / f"{split}_npz"
            for z in range(image.shape[0]):
                path = folder / f"{name}_slice{z:03d}.npz"
                write_npz(path, {"image": image[z], "label": label[z]})
                written.add(path)
                splits[split]["slices"].append(rel(path, out_dir))
        if split in ("val", "test"):
            path = out_dir / f"{split}_vol_h5" / f"{name}.npy.h5"
            attrs = {"spacing": np.asarray(geom.spacing, dtype=np.float64), **geom.to_attrs()}
            attrs["source_file"] = pairs[num][0].name
            write_h5(path, {"image": image, "label": label}, attrs)
            written.add(path)
            splits[split]["volumes"].append(rel(path, out_dir))
    removed = remove_stale(out_dir, _OUT_DIRS, written)
    lists = out_dir / "lists_Synapse"
    stem = lambda p: Path(p).name.removesuffix(".npz").removesuffix(".npy.h5")  # noqa: E731
    write_list(lists / "train.txt", [stem(p) for p in splits["train"]["slices"]])
    write_list(lists / "test_vol.txt", splits["test"]["cases"])
    if val:
        write_list(lists / "val.txt", [stem(p) for p in splits["val"]["slices"]])
        write_list(lists / "val_vol.txt", splits["val"]["cases"])
    else:
        for extra in ("val.txt", "val_vol.txt"):
            (lists / extra).unlink(missing_ok=True)
    on_disk = set(pairs)
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "orientation": cfg.orientation,
        "label_map": {"btcv_to_class": {str(k): v for k, v in sorted(BTCV_TO_SYNAPSE.items())}},
        "missing_cases": [case_name(m) for m in missing],
        "unused_cases": [case_name(n) for n in sorted(on_disk - set(train) - set(val) - set(test))],
        "removed_stale_files": removed,
        "lists_dir": "lists_Synapse",
    }
    return write_manifest(
        out_dir,
        name="synapse",
        source="raw",
        modality="CT",
        class_names=SYNAPSE_CLASSES,
        preprocessing=cfg.preprocessing,
        splits=splits,
        stats=stats,
        source_info=info,
    )


# --------------------------------------------------------------------------------------
# TransUNet's preprocessed release
# --------------------------------------------------------------------------------------


def is_release(raw_dir: Path) -> bool:
    """True when ``raw_dir`` looks like the preprocessed release."""
    return (raw_dir / "train_npz").is_dir() or (raw_dir / "test_vol_h5").is_dir()


def _find_lists(cfg: SynapseConfig, raw_dir: Path) -> Path | None:
    if cfg.lists_dir:
        p = Path(cfg.lists_dir)
        p = p if p.is_absolute() else raw_dir / p
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: lists_dir not found")
        return p
    for p in (raw_dir / "lists_Synapse", raw_dir / "lists" / "lists_Synapse"):
        if p.is_dir():
            return p
    return None


def index_release(cfg: SynapseConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Validate the preprocessed release in ``raw_dir`` and index it in ``out_dir``."""
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    train_dir, test_dir = raw_dir / "train_npz", raw_dir / "test_vol_h5"
    lists = _find_lists(cfg, raw_dir)
    if lists is not None:
        train_names = read_list(lists / "train.txt")
        test_names = read_list(lists / "test_vol.txt")
        slice_paths = [train_dir / f"{n.removesuffix('.npz')}.npz" for n in train_names]
        vol_paths = [test_dir / f"{n.removesuffix('.npy.h5')}.npy.h5" for n in test_names]
        for path, list_file in [(p, lists / "train.txt") for p in slice_paths] + [
            (p, lists / "test_vol.txt") for p in vol_paths
        ]:
            if not path.is_file():
                raise FileNotFoundError(f"{list_file}: lists {path.name}, not on disk ({path})")
    else:
        slice_paths = sorted(train_dir.glob("*.npz")) if train_dir.is_dir() else []
        vol_paths = sorted(test_dir.glob("*.npy.h5")) if test_dir.is_dir() else []
    if not slice_paths:
        raise ValueError(f"{raw_dir}: empty input folder: no training slices in {train_dir}")
    if not vol_paths:
        raise ValueError(f"{raw_dir}: empty input folder: no test volumes in {test_dir}")

    prepare_out_dir(out_dir)
    val_names = {case_name(n) for n in cfg.val_cases}
    splits = {"train": empty_split(), "val": empty_split(), "test": empty_split()}
    stats = {s: SplitStats(len(SYNAPSE_CLASSES)) for s in splits}
    max_id = len(SYNAPSE_CLASSES) - 1
    for path in slice_paths:
        case = slice_case_name(path)
        split = "val" if case in val_names else "train"
        if cfg.verify_release:
            image, label = read_slice(path)
            check_image(image, path)
            check_labels(label, max_id, path)
            add_slice_stats(stats[split], case, image, label)
        if case not in splits[split]["cases"]:
            splits[split]["cases"].append(case)
        splits[split]["slices"].append(rel(path, out_dir))
    for path in vol_paths:
        case = volume_case_name(path)
        if cfg.verify_release:
            image, label, spacing, _ = read_volume(path)
            check_image(image, path)
            check_labels(label, max_id, path)
            stats["test"].add_case(case, image, label, spacing)
        splits["test"]["cases"].append(case)
        splits["test"]["volumes"].append(rel(path, out_dir))
    missing_val = sorted(val_names - set(splits["val"]["cases"]))
    if missing_val and not cfg.allow_missing_cases:
        raise FileNotFoundError(f"{raw_dir}: validation cases {missing_val} have no slices")
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "lists_dir": None if lists is None else rel(lists, out_dir),
        "lists": "from list files" if lists is not None else "derived from folder contents",
        "verified": cfg.verify_release,
        "missing_cases": missing_val,
    }
    return write_manifest(
        out_dir,
        name="synapse",
        source="release",
        modality="CT",
        class_names=SYNAPSE_CLASSES,
        preprocessing=cfg.preprocessing,
        splits=splits,
        stats=stats,
        source_info=info,
    )


def preprocess_synapse(
    cfg: SynapseConfig, raw_dir: str | Path, out_dir: str | Path
) -> dict[str, Any]:
    """Build the Synapse dataset folder ``out_dir`` from ``raw_dir``.

    Args:
        cfg: :class:`SynapseConfig`.
        raw_dir: Raw NIfTI folder or the preprocessed release.
        out_dir: Output folder; ``dataset.json`` is written there last.

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    source = cfg.source
    if source == "auto":
        source = "release" if is_release(raw_dir) else "raw"
    if source == "release":
        return index_release(cfg, raw_dir, out_dir)
    return preprocess_raw(cfg, raw_dir, out_dir)
