"""ACDC as SSL4MIS (HiLab-git/SSL4MIS) preprocessed it, validated and indexed in place.

Layout (``raw_dir``, the folder SSL4MIS calls ``ACDC``):

- ``data/patientXXX_frameYY.h5``: volumes, datasets ``image`` float32 (Z, H, W) min-max
  scaled to [0, 1] and ``label`` uint8 (Z, H, W) with ids 0-3;
- ``data/slices/patientXXX_frameYY_slice_N.h5``: 2-D slices with the same two datasets;
- ``train_slices.list``, ``train.list``, ``val.list``, ``test.list`` beside ``data/``: one
  name per line without extension (slices in the first, volumes in the others).

Split (``AcdcConfig.split``):

- ``"mtunet"`` (default): by patient, ``cfg.train_set()``, ``val_patients`` and
  ``test_patients`` (MT-UNet's 70 / 10 / 20 unless changed), every frame of a patient on
  one side; training uses every slice on disk of the training patients, validation and
  test use the volumes. Split patients not on disk raise unless ``allow_missing_cases``.
- ``"layout"``: the layout's own lists: training slices from ``train_slices.list`` (or,
  without it, every slice of the frames in ``train.list``), validation volumes from
  ``val.list`` (optional), test volumes from ``test.list``.

Either way a patient on two sides is an error, so no slice of a validation or test patient
reaches training. Files are referenced in place (the manifest's paths are relative to the
output folder, e.g. ``../ssl4mis/data/slices/patient001_frame01_slice_0.h5``); only what the
layout lacks is written to the output folder: a validation / test frame with slices but no
volume file is stacked into ``val_vol_h5/`` / ``test_vol_h5/``, a training frame with a
volume but no slices is cut into ``train_npz/`` slices.

Case ids are the layout's frame names (``patient001_frame01``): the layout does not record
which frame is ED and which ES, so ``phases`` must keep both. It stores no voxel spacing
either: ``source_info.spacing_known`` is false, per-case spacings are null, and evaluation
reports HD95 in voxels only (``hd95_mm`` omitted), as for MT-UNet's release. The manifest's
``source`` is ``"release"`` (a preprocessed release; ``source_info.layout`` says which).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.data.acdc import ACDC_MAX_ID, AcdcConfig, patient_name
from mtunet.data.acdc_release import stack_slices
from mtunet.data.common import (
    ACDC_CLASSES,
    check_image,
    check_labels,
    read_slice,
    read_volume,
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
    write_manifest,
)

LIST_FILES = ("train_slices.list", "train.list", "val.list", "test.list")
_VOLUME_RE = re.compile(r"^patient(\d{3})_frame(\d+)$")
_SLICE_RE = re.compile(r"^(patient(\d{3})_frame\d+)_slice_(\d+)$")
_OUT_DIRS = ("train_npz", "val_vol_h5", "test_vol_h5")
_SPLITS = ("train", "val", "test")


@dataclass
class Frame:
    """One annotated frame of the layout: its volume file and / or its slice files."""

    name: str
    patient: int
    volume: Path | None = None
    slices: dict[int, Path] = field(default_factory=dict)

    def slice_paths(self) -> list[Path]:
        return [self.slices[n] for n in sorted(self.slices)]


def is_ssl4mis(raw_dir: Path) -> bool:
    """True when ``raw_dir`` holds the SSL4MIS layout: ``data/`` with a ``*.list`` file
    beside it or a ``data/slices/`` folder."""
    lists = any((raw_dir / n).is_file() for n in LIST_FILES)
    return (raw_dir / "data").is_dir() and (lists or (raw_dir / "data" / "slices").is_dir())


def scan(raw_dir: Path) -> dict[str, Frame]:
    """Frame name -> :class:`Frame` for every ``data/*.h5`` volume and slice file.

    Raises:
        FileNotFoundError: No ``data/`` folder. ValueError: no patientXXX_frameYY files.
    """
    data = raw_dir / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: folder not found (the SSL4MIS layout keeps its .h5 here)")
    frames: dict[str, Frame] = {}
    for path in sorted(data.glob("*.h5")):
        if m := _VOLUME_RE.match(path.name.removesuffix(".h5")):
            frames.setdefault(path.stem, Frame(path.stem, int(m.group(1)))).volume = path
    for path in sorted((data / "slices").glob("*.h5")):
        if m := _SLICE_RE.match(path.name.removesuffix(".h5")):
            frame = frames.setdefault(m.group(1), Frame(m.group(1), int(m.group(2))))
            frame.slices[int(m.group(3))] = path
    if not frames:
        raise ValueError(
            f"{data}: empty input folder: no patientXXX_frameYY.h5 volumes and no "
            "slices/patientXXX_frameYY_slice_N.h5 files"
        )
    return frames


def _read_names(path: Path, pattern: re.Pattern[str]) -> list[str]:
    names = [n.removesuffix(".h5") for n in read_list(path)]
    for n in names:
        if not pattern.match(n):
            raise ValueError(f"{path}: entry {n!r} is not a name like {pattern.pattern}")
    return names


def _layout_split(raw_dir: Path, frames: dict[str, Frame]) -> dict[str, dict[str, Frame]]:
    """The layout's own lists: split -> frame name -> frame holding the files to index."""
    plan: dict[str, dict[str, Frame]] = {s: {} for s in _SPLITS}
    slices_list = raw_dir / "train_slices.list"
    if slices_list.is_file():
        for entry in _read_names(slices_list, _SLICE_RE):
            m = _SLICE_RE.match(entry)
            assert m is not None
            frame = frames.get(m.group(1))
            number = int(m.group(3))
            if frame is None or number not in frame.slices:
                raise FileNotFoundError(
                    f"{slices_list}: lists {entry}, not on disk "
                    f"({raw_dir / 'data' / 'slices' / entry}.h5)"
                )
            picked = plan["train"].setdefault(frame.name, Frame(frame.name, frame.patient))
            picked.slices[number] = frame.slices[number]
    for split, list_name in (("train", "train.list"), ("val", "val.list"), ("test", "test.list")):
        list_file = raw_dir / list_name
        if split == "train" and slices_list.is_file():
            continue
        if not list_file.is_file():
            if split == "val":
                continue
            raise FileNotFoundError(f"{list_file}: split list not found")
        for name in _read_names(list_file, _VOLUME_RE):
            if name not in frames:
                raise FileNotFoundError(
                    f"{list_file}: lists {name}, not on disk ({raw_dir / 'data' / name}.h5)"
                )
            plan[split][name] = frames[name]
    return plan


def _patient_split(
    cfg: AcdcConfig, raw_dir: Path, frames: dict[str, Frame]
) -> tuple[dict[str, dict[str, Frame]], list[int]]:
    """Split by patient (``cfg``'s patients); returns the plan and the missing patients."""
    on_disk = {f.patient for f in frames.values()}
    wanted = {"train": cfg.train_set(), "val": cfg.val_patients, "test": cfg.test_patients}
    missing = sorted({p for ids in wanted.values() for p in ids} - on_disk)
    if missing and not cfg.allow_missing_cases:
        raise FileNotFoundError(
            f"{raw_dir}: {len(missing)} patients {[patient_name(m) for m in missing[:10]]}"
            f"{' ...' if len(missing) > 10 else ''} are in the split but not on disk "
            "(set allow_missing_cases: true to skip them)"
        )
    roles = {p: s for s, ids in wanted.items() for p in ids}
    plan: dict[str, dict[str, Frame]] = {s: {} for s in _SPLITS}
    for name in sorted(frames):
        if frames[name].patient in roles:
            plan[roles[frames[name].patient]][name] = frames[name]
    return plan, missing


def _check_disjoint(raw_dir: Path, plan: dict[str, dict[str, Frame]]) -> None:
    """Raise ValueError when a patient's frames fall on two sides of the split."""
    patients = {s: {f.patient for f in plan[s].values()} for s in _SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = sorted(patients[a] & patients[b])
        if both:
            raise ValueError(
                f"{raw_dir}: patients {[patient_name(p) for p in both]} are in both the {a} "
                f"and the {b} split; slices of one patient must not cross the split"
            )


def _read_checked_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image, label, _, _ = read_volume(path)
    check_image(image, path)
    return image, check_labels(label, ACDC_MAX_ID, path).astype(np.uint8)


def index_ssl4mis(cfg: AcdcConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Validate the SSL4MIS ACDC layout in ``raw_dir`` and index it in ``out_dir``.

    Args:
        cfg: :class:`~mtunet.data.acdc.AcdcConfig` (``split``, the patients,
            ``allow_missing_cases``, ``verify_release``).
        raw_dir: The layout folder (``data/`` and the ``*.list`` files).
        out_dir: Output folder; ``dataset.json`` is written there last.

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.

    Raises:
        FileNotFoundError: Missing folder, list or listed file; split patients not on disk.
        ValueError: A bad file (naming it: unreadable, missing dataset, shapes differ,
            non-finite image, label ids outside 0..3), a patient on two sides of the split,
            an empty training or test split, or ``phases`` not both ED and ES.
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    if set(cfg.phases) != {"ED", "ES"}:
        raise ValueError(
            f"preprocess.phases: the SSL4MIS layout does not record which frame is ED or ES; "
            f"keep both phases (got {list(cfg.phases)})"
        )
    frames = scan(raw_dir)
    missing: list[int] = []
    if cfg.split == "layout":
        plan = _layout_split(raw_dir, frames)
    else:
        plan, missing = _patient_split(cfg, raw_dir, frames)
    _check_disjoint(raw_dir, plan)
    for split in ("train", "test"):
        if not plan[split]:
            raise ValueError(f"{raw_dir}: no {split} frame on disk for split {cfg.split!r}")

    prepare_out_dir(out_dir)
    splits = {s: empty_split() for s in _SPLITS}
    stats = {s: SplitStats(len(ACDC_CLASSES)) for s in _SPLITS}
    written: set[Path] = set()
    for split in _SPLITS:
        for name in sorted(plan[split]):
            frame = plan[split][name]
            splits[split]["cases"].append(name)
            if split == "train" and frame.slices:
                for path in frame.slice_paths():
                    if cfg.verify_release:
                        image, label = read_slice(path)
                        check_image(image, path)
                        label = check_labels(label, ACDC_MAX_ID, path).astype(np.uint8)
                        add_slice_stats(stats[split], name, image, label)
                    splits[split]["slices"].append(rel(path, out_dir))
            elif split == "train":  # a volume without slice files: cut it into slices
                assert frame.volume is not None
                image, label = _read_checked_volume(frame.volume)
                for z in range(image.shape[0]):
                    path = out_dir / "train_npz" / f"{name}_slice{z:03d}.npz"
                    write_npz(path, {"image": image[z], "label": label[z]})
                    written.add(path)
                    add_slice_stats(stats[split], name, image[z], label[z])
                    splits[split]["slices"].append(rel(path, out_dir))
            elif frame.volume is not None:
                if cfg.verify_release:
                    image, label = _read_checked_volume(frame.volume)
                    stats[split].add_case(name, image, label, None)
                splits[split]["volumes"].append(rel(frame.volume, out_dir))
            else:  # slices without a volume file: stack them
                path = out_dir / f"{split}_vol_h5" / f"{name}.npy.h5"
                image, label = stack_slices(name, frame.slice_paths(), path)
                written.add(path)
                stats[split].add_case(name, image, label, None)
                splits[split]["volumes"].append(rel(path, out_dir))
        splits[split]["patients"] = sorted({patient_name(f.patient) for f in plan[split].values()})
    removed = remove_stale(out_dir, _OUT_DIRS, written)
    used = {p for s in _SPLITS for p in splits[s]["patients"]}
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "layout": "ssl4mis",
        "split": cfg.split,
        "lists": [n for n in LIST_FILES if (raw_dir / n).is_file()],
        "verified": cfg.verify_release,
        "spacing_known": False,
        "written_files": sorted(rel(p, out_dir) for p in written),
        "missing_cases": [patient_name(m) for m in missing],
        "unused_cases": sorted({patient_name(f.patient) for f in frames.values()} - used),
        "removed_stale_files": removed,
    }
    return write_manifest(
        out_dir,
        name="acdc",
        source="release",
        modality="MR",
        class_names=ACDC_CLASSES,
        preprocessing={"kind": "minmax"},
        splits=splits,
        stats=stats,
        source_info=info,
    )
