"""ACDC as SSL4MIS (HiLab-git/SSL4MIS) preprocessed it, validated and indexed in place.

Layout (``raw_dir``, the folder SSL4MIS calls ``ACDC``):

- ``data/patientXXX_frameYY.h5``: volumes, datasets ``image`` float32 (Z, H, W) min-max
  scaled to [0, 1] and ``label`` uint8 (Z, H, W) with ids 0-3;
- ``data/slices/patientXXX_frameYY_slice_N.h5`` (SSL4MIS's own script) or
  ``data/patientXXX_frameYY_slice_N.h5`` (flat, as public copies keep them): 2-D slices
  with the same two datasets, ``N`` counting from 0;
- ``train_slices.list``, ``train.list``, ``val.list``, ``test.list`` beside ``data/``: one
  name per line without extension (slices in the first, volumes in the others).

A copy may hold any patient as volumes, as slices or both: SSL4MIS's own split ships its
70 training patients as slices only and its 30 validation and test patients as volumes only.

Split (``AcdcConfig.split``):

- ``"mtunet"`` (default): by patient, ``cfg.train_set()``, ``val_patients`` and
  ``test_patients`` (MT-UNet's 70 / 10 / 20 unless changed), every frame of a patient on
  one side; training uses every slice on disk of the training patients, validation and
  test use the volumes. A split patient with neither volumes nor slices on disk raises
  unless ``allow_missing_cases``.
- ``"layout"``: the layout's own lists: training slices from ``train_slices.list`` (or,
  without it, every slice of the frames in ``train.list``), validation volumes from
  ``val.list`` (optional), test volumes from ``test.list``.

Either way a patient on two sides is an error, so no slice of a validation or test patient
reaches training. Files are referenced in place (the manifest's paths are relative to the
output folder, e.g. ``../ssl4mis/data/slices/patient001_frame01_slice_0.h5``); only what the
copy lacks is written, into the output folder: a validation / test frame held as slices
only is stacked into ``val_vol_h5/`` / ``test_vol_h5/<frame>.npy.h5`` (its slices must be
numbered 0..n-1 without a gap), a training frame held as a volume only is cut into
``train_npz/<frame>_sliceNNN.npz`` (with ``train_slices.list``, only the listed slices).
``source_info.stacked_cases`` and ``source_info.sliced_cases`` name those frames per split,
``source_info.found`` says what the copy holds.

Case ids are the layout's frame names (``patient001_frame01``): the layout does not record
which frame is ED and which ES, so ``phases`` must keep both. It stores no voxel spacing
either: ``source_info.spacing_known`` is false, per-case spacings are null, and evaluation
reports HD95 in voxels only (``hd95_mm`` omitted), as for MT-UNet's release. The manifest's
``source`` is ``"release"`` (a preprocessed release; ``source_info.layout`` says which).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mtunet.data.acdc_common import (
    AcdcConfig,
    cut_volume,
    missing_patients_error,
    patient_name,
    read_checked_slice,
    read_checked_volume,
    stack_slices,
)
from mtunet.data.common import ACDC_CLASSES
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
LAYOUT = (
    "The SSL4MIS layout holds data/patientXXX_frameYY.h5 (volumes) and "
    "data/slices/patientXXX_frameYY_slice_N.h5 or data/patientXXX_frameYY_slice_N.h5 "
    "(2-D slices), with train_slices.list, train.list, val.list and test.list beside data/; "
    "each patient of the split needs its frames as volumes or as slices, either is enough "
    "(see docs/data.md)."
)
_VOLUME_RE = re.compile(r"^patient(\d{3})_frame(\d+)$")
_SLICE_RE = re.compile(r"^(patient(\d{3})_frame\d+)_slice_(\d+)$")
_OUT_DIRS = ("train_npz", "val_vol_h5", "test_vol_h5")
_SPLITS = ("train", "val", "test")


@dataclass
class Frame:
    """One annotated frame of the layout: its volume file and / or its slice files.

    In a split plan a training frame also says what to cut from its volume: ``cut_all``
    every slice (no slice file on disk), or the listed slice numbers ``cut`` whose files
    are absent.
    """

    name: str
    patient: int
    volume: Path | None = None
    slices: dict[int, Path] = field(default_factory=dict)
    cut: tuple[int, ...] = ()
    cut_all: bool = False

    def slice_paths(self) -> list[Path]:
        return [self.slices[n] for n in sorted(self.slices)]


def is_ssl4mis(raw_dir: Path) -> bool:
    """True when ``raw_dir`` holds the SSL4MIS layout: ``data/`` with a ``*.list`` file
    beside it, a ``data/slices/`` folder or ``patientXXX_frameYY*.h5`` files."""
    data = raw_dir / "data"
    if not data.is_dir():
        return False
    lists = any((raw_dir / n).is_file() for n in LIST_FILES)
    return lists or (data / "slices").is_dir() or any(data.glob("patient*_frame*.h5"))


def _add_slice(frames: dict[str, Frame], path: Path, m: re.Match[str]) -> None:
    frame = frames.setdefault(m.group(1), Frame(m.group(1), int(m.group(2))))
    number = int(m.group(3))
    if number in frame.slices:
        raise ValueError(
            f"{frame.slices[number]} and {path}: slice {number} of {frame.name} is held twice "
            "(data/ and data/slices/); keep one copy"
        )
    frame.slices[number] = path


def scan(raw_dir: Path) -> dict[str, Frame]:
    """Frame name -> :class:`Frame` for every volume in ``data/`` and every slice file in
    ``data/`` or ``data/slices/``.

    Raises:
        FileNotFoundError: No ``data/`` folder. ValueError: no patientXXX_frameYY files, or
            one slice held in both places.
    """
    data = raw_dir / "data"
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: folder not found (the SSL4MIS layout keeps its .h5 here)")
    frames: dict[str, Frame] = {}
    for path in sorted(data.glob("*.h5")) + sorted((data / "slices").glob("*.h5")):
        stem = path.name.removesuffix(".h5")
        if (m := _VOLUME_RE.match(stem)) and path.parent == data:
            frames.setdefault(stem, Frame(stem, int(m.group(1)))).volume = path
        elif m := _SLICE_RE.match(stem):
            _add_slice(frames, path, m)
    if not frames:
        raise ValueError(
            f"{data}: empty input folder: no patientXXX_frameYY.h5 volumes and no "
            "patientXXX_frameYY_slice_N.h5 slices (in data/ or data/slices/)"
        )
    return frames


def describe(raw_dir: Path, frames: dict[str, Frame]) -> dict[str, int]:
    """What the copy holds: patients and files as volumes / as slices, and where."""
    data = raw_dir / "data"
    slices = [p for f in frames.values() for p in f.slices.values()]
    with_volume = {f.patient for f in frames.values() if f.volume is not None}
    with_slices = {f.patient for f in frames.values() if f.slices}
    return {
        "patients": len(with_volume | with_slices),
        "patients_with_volumes": len(with_volume),
        "patients_with_slices": len(with_slices),
        "patients_with_both": len(with_volume & with_slices),
        "volume_files": sum(f.volume is not None for f in frames.values()),
        "slice_files_in_data": sum(p.parent == data for p in slices),
        "slice_files_in_data_slices": sum(p.parent != data for p in slices),
    }


def _found_words(raw_dir: Path, frames: dict[str, Frame]) -> str:
    d = describe(raw_dir, frames)
    return (
        f"{d['patients']} patients in {raw_dir / 'data'}: {d['patients_with_volumes']} as "
        f"volumes ({d['volume_files']} files in data/), {d['patients_with_slices']} as slices "
        f"({d['slice_files_in_data']} files in data/, {d['slice_files_in_data_slices']} in "
        f"data/slices/), {d['patients_with_both']} as both"
    )


def _read_names(path: Path, pattern: re.Pattern[str]) -> list[str]:
    names = [n.removesuffix(".h5") for n in read_list(path)]
    for n in names:
        if not pattern.match(n):
            raise ValueError(f"{path}: entry {n!r} is not a name like {pattern.pattern}")
    return names


def _layout_split(raw_dir: Path, frames: dict[str, Frame]) -> dict[str, dict[str, Frame]]:
    """The layout's own lists: split -> frame name -> frame holding the files to index.

    Raises:
        FileNotFoundError: A missing train / test list, or listed names with no file (the
            first named, with how many and what the copy holds).
    """
    plan: dict[str, dict[str, Frame]] = {s: {} for s in _SPLITS}
    absent: list[tuple[Path, str]] = []
    slices_list = raw_dir / "train_slices.list"
    if slices_list.is_file():
        for entry in _read_names(slices_list, _SLICE_RE):
            m = _SLICE_RE.match(entry)
            assert m is not None
            frame, number = frames.get(m.group(1)), int(m.group(3))
            if frame is None or (number not in frame.slices and frame.volume is None):
                absent.append((slices_list, f"{entry}, not on disk ({raw_dir / 'data'}/...)"))
                continue
            picked = plan["train"].setdefault(
                frame.name, Frame(frame.name, frame.patient, frame.volume)
            )
            if number in frame.slices:
                picked.slices[number] = frame.slices[number]
            else:  # held in the frame's volume only: cut from it
                picked.cut += (number,)
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
                absent.append((list_file, f"{name}, not on disk ({raw_dir / 'data' / name}.h5)"))
            else:
                plan[split][name] = frames[name]
    if absent:
        list_file, what = absent[0]
        more = f"; {len(absent) - 1} more listed names are not on disk" if len(absent) > 1 else ""
        raise FileNotFoundError(
            f"{list_file}: lists {what}{more}; found {_found_words(raw_dir, frames)}. {LAYOUT}"
        )
    return plan


def _patient_split(
    cfg: AcdcConfig, raw_dir: Path, frames: dict[str, Frame]
) -> tuple[dict[str, dict[str, Frame]], list[int]]:
    """Split by patient (``cfg``'s patients); returns the plan and the missing patients."""
    on_disk = {f.patient for f in frames.values()}
    wanted = cfg.wanted()
    in_split = {p for ids in wanted.values() for p in ids}
    missing = sorted(in_split - on_disk)
    if missing and not cfg.allow_missing_cases:
        layout = LAYOUT
        try:
            _layout_split(raw_dir, frames)
            layout += " This copy's own lists are all on disk: preprocess.split: layout uses them."
        except (FileNotFoundError, ValueError):
            pass
        found = _found_words(raw_dir, frames)
        raise missing_patients_error(raw_dir, missing, len(in_split), found, layout)
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


def _plan(
    cfg: AcdcConfig, raw_dir: Path
) -> tuple[dict[str, dict[str, Frame]], list[int], dict[str, Frame]]:
    """Scan, split and check: ``(plan, missing patients, every frame on disk)``; training
    frames held as volumes only are marked to cut."""
    frames = scan(raw_dir)
    missing: list[int] = []
    if cfg.split == "layout":
        plan = _layout_split(raw_dir, frames)
    else:
        plan, missing = _patient_split(cfg, raw_dir, frames)
    _check_disjoint(raw_dir, plan)
    for split in ("train", "test"):
        if not plan[split]:
            raise ValueError(
                f"{raw_dir}: no {split} frame on disk for split {cfg.split!r}; found "
                f"{_found_words(raw_dir, frames)}"
            )
    plan["train"] = {
        n: replace(f, cut_all=not f.slices and not f.cut) for n, f in plan["train"].items()
    }
    return plan, missing, frames


def index_ssl4mis(cfg: AcdcConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Validate the SSL4MIS ACDC layout in ``raw_dir`` and index it in ``out_dir``.

    Args:
        cfg: :class:`~mtunet.data.acdc_common.AcdcConfig` (``split``, the patients,
            ``allow_missing_cases``, ``verify_release``).
        raw_dir: The layout folder (``data/`` and the ``*.list`` files).
        out_dir: Output folder; ``dataset.json`` is written there last, with the stacked
            and cut files the module doc describes.

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.

    Raises:
        FileNotFoundError: Missing folder, list or listed file; split patients not on disk.
        ValueError: A bad file (naming it: unreadable, missing dataset, shapes differ,
            non-finite image, label ids outside 0..3), slices that cannot be stacked, a
            patient on two sides of the split, an empty training or test split, or
            ``phases`` not both ED and ES.
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    if set(cfg.phases) != {"ED", "ES"}:
        raise ValueError(
            f"preprocess.phases: the SSL4MIS layout does not record which frame is ED or ES; "
            f"keep both phases (got {list(cfg.phases)})"
        )
    plan, missing, frames = _plan(cfg, raw_dir)
    prepare_out_dir(out_dir)
    splits = {s: empty_split() for s in _SPLITS}
    stats = {s: SplitStats(len(ACDC_CLASSES)) for s in _SPLITS}
    written: set[Path] = set()
    stacked: dict[str, list[str]] = {"val": [], "test": []}
    sliced: dict[str, list[str]] = {"train": []}
    for split in _SPLITS:
        for name in sorted(plan[split]):
            frame = plan[split][name]
            splits[split]["cases"].append(name)
            if split == "train":
                for path in frame.slice_paths():
                    if cfg.verify_release:
                        image, label = read_checked_slice(path)
                        add_slice_stats(stats[split], name, image, label)
                    splits[split]["slices"].append(rel(path, out_dir))
                if frame.cut or frame.cut_all:  # held as a volume only: cut it into slices
                    assert frame.volume is not None
                    image, label = read_checked_volume(frame.volume)
                    numbers = range(image.shape[0]) if frame.cut_all else sorted(set(frame.cut))
                    folder = out_dir / "train_npz"
                    paths = cut_volume(name, image, label, folder, numbers, frame.volume)
                    for z, path in zip(numbers, paths, strict=True):
                        add_slice_stats(stats[split], name, image[z], label[z])
                        written.add(path)
                        splits[split]["slices"].append(rel(path, out_dir))
                    sliced[split].append(name)
            elif frame.volume is not None:
                if cfg.verify_release:
                    image, label = read_checked_volume(frame.volume)
                    stats[split].add_case(name, image, label, None)
                splits[split]["volumes"].append(rel(frame.volume, out_dir))
            else:  # held as slices only: stack them into a volume
                path = out_dir / f"{split}_vol_h5" / f"{name}.npy.h5"
                image, label = stack_slices(name, frame.slice_paths(), path, complete=True)
                written.add(path)
                stats[split].add_case(name, image, label, None)
                splits[split]["volumes"].append(rel(path, out_dir))
                stacked[split].append(name)
        splits[split]["patients"] = sorted({patient_name(f.patient) for f in plan[split].values()})
    removed = remove_stale(out_dir, _OUT_DIRS, written)
    used = {p for s in _SPLITS for p in splits[s]["patients"]}
    on_disk = {patient_name(f.patient) for f in frames.values()}
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "layout": "ssl4mis",
        "split": cfg.split,
        "lists": [n for n in LIST_FILES if (raw_dir / n).is_file()],
        "verified": cfg.verify_release,
        "spacing_known": False,
        "found": describe(raw_dir, frames),
        "stacked_cases": stacked,
        "sliced_cases": sliced,
        "written_files": sorted(rel(p, out_dir) for p in written),
        "missing_cases": [patient_name(m) for m in missing],
        "unused_cases": sorted(on_disk - used),
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
