"""ACDC as MT-UNet's preprocessed release distributes it, validated and indexed in place.

Layout (``lists_ACDC/{train,valid,test}.txt``): slices listed in ``train.txt`` /
``valid.txt`` under ``train/`` / ``valid/`` (or the folder itself) as
``case_XXX_sliceED_N.npz`` with ``img`` and ``label``; test volumes
``case_XXX_volume_ED.npz`` under ``test/``. Every listed file is checked (and with
``verify_release`` read and validated) and indexed in place. Case ids are ``case_XXX_ED`` /
``case_XXX_ES``; the lists are MT-UNet's split.

The release holds its training and validation patients as slices only and its test
patients as volumes only. Where a split needs what a case is not listed as, the indexer
derives it into the output folder (the release folder is never written to):

- validation and test need volumes: a case listed as slices only is stacked (in
  slice-number order) into ``val_vol_h5/`` / ``test_vol_h5/<case>.npy.h5``; for validation
  that is every case of the release, so best-validation model selection
  (:func:`mtunet.training.validation_dice` over the manifest's ``val`` volumes) works;
- training needs slices: a case listed as a volume only is cut into
  ``train_npz/<case>_sliceNNN.npz``.

``source_info.stacked_cases`` and ``source_info.sliced_cases`` name those cases per split.
Release files carry no voxel spacing: ``source_info.spacing_known`` is false, the volumes
have no ``spacing`` attribute, and evaluation reports HD95 in voxels only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mtunet.data.acdc_common import (
    ACDC_MAX_ID,
    AcdcConfig,
    cut_volume,
    read_checked_volume,
    stack_slices,
)
from mtunet.data.common import (
    ACDC_CLASSES,
    check_image,
    check_labels,
    read_slice,
    read_volume,
    slice_case_name,
    volume_case_name,
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

_SPLIT_LISTS = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}
_SUBDIRS = {"train": "train", "val": "valid", "test": "test"}
_OUT_DIRS = ("train_npz", "val_vol_h5", "test_vol_h5")
_PATIENT_RE = re.compile(r"^(\D*\d+)")
LAYOUT = (
    "MT-UNet's release holds lists_ACDC/{train,valid,test}.txt naming its files, "
    "train/ and valid/ with slices case_XXX_sliceED_N.npz (arrays img, label) and test/ with "
    "volumes case_XXX_volume_ED.npz (see docs/data.md)."
)


def _patient_of(case: str) -> str:
    """``case_019_ED`` -> ``case_019`` (the name up to its first number)."""
    m = _PATIENT_RE.match(case)
    return m.group(1) if m else case


def _is_volume(path: Path) -> bool:
    return "_volume" in path.name


def is_release(raw_dir: Path) -> bool:
    """True when ``raw_dir`` holds MT-UNet's release (a ``lists_ACDC`` folder)."""
    return (raw_dir / "lists_ACDC").is_dir()


def _found(raw_dir: Path) -> str:
    """What ``.npz`` files the release folder holds, in words (for missing-file errors)."""
    counts = [f"{sub}/ {len(list((raw_dir / sub).glob('*.npz')))}" for sub in _SUBDIRS.values()]
    return f".npz files: {', '.join(counts)}, the folder itself {len(list(raw_dir.glob('*.npz')))}"


def _list_entries(raw_dir: Path) -> dict[str, list[Path]]:
    """Split -> the listed files; a missing list or file raises, naming what was found.

    Raises:
        FileNotFoundError: No lists folder, a missing train / test list, listed files not on
            disk (the first named, with how many and what the folder holds).
        ValueError: An empty train / test list.
    """
    lists = raw_dir / "lists_ACDC"
    entries: dict[str, list[Path]] = {}
    absent: list[tuple[Path, str, Path]] = []  # (list file, entry, where it was expected)
    listed = 0
    for split, list_name in _SPLIT_LISTS.items():
        list_file = lists / list_name
        entries[split] = []
        if split == "val" and not list_file.is_file():
            continue
        names = read_list(list_file)
        if split != "val" and not names:
            raise ValueError(f"{list_file}: empty split list")
        listed += len(names)
        for entry in names:
            name = entry if entry.endswith(".npz") else f"{entry}.npz"
            candidates = (raw_dir / _SUBDIRS[split] / name, raw_dir / name)
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                absent.append((list_file, entry, candidates[0]))
            else:
                entries[split].append(path)
    if absent:
        list_file, entry, expected = absent[0]
        more = f"; {len(absent) - 1} more of the {listed} listed files are missing too"
        raise FileNotFoundError(
            f"{list_file}: lists {entry}, not on disk ({expected})"
            f"{more if len(absent) > 1 else ''}; found {_found(raw_dir)}. {LAYOUT}"
        )
    return entries


def _verify(path: Path, case: str, stats: SplitStats, count: bool) -> None:
    """Read and check one listed file; add it to ``stats`` when ``count``."""
    if _is_volume(path):
        image, label, spacing, _ = read_volume(path)
    else:
        image, label = read_slice(path)
    check_image(image, path)
    check_labels(label, ACDC_MAX_ID, path)
    if not count:
        return
    if _is_volume(path):
        stats.add_case(case, image, label, spacing)
    else:
        add_slice_stats(stats, case, image, label)


def index_release(cfg: AcdcConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Validate MT-UNet's ACDC release in ``raw_dir`` and index it in ``out_dir``.

    Args:
        cfg: :class:`~mtunet.data.acdc_common.AcdcConfig` (``verify_release``; the
            release's own lists are the split).
        raw_dir: The release folder (``lists_ACDC/`` and the listed files).
        out_dir: Output folder: ``dataset.json`` (written last) and what the module doc
            says is derived (``val_vol_h5/``, ``test_vol_h5/``, ``train_npz/``).

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.

    Raises:
        FileNotFoundError: Missing folder, list or listed file.
        ValueError: An empty train / test list, a bad file (naming it), slices that cannot
            be stacked, no test case, or a patient listed on two sides of the split.
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    lists = raw_dir / "lists_ACDC"
    entries = _list_entries(raw_dir)
    prepare_out_dir(out_dir)
    splits = {"train": empty_split(), "val": empty_split(), "test": empty_split()}
    stats = {s: SplitStats(len(ACDC_CLASSES)) for s in splits}
    for split, paths in entries.items():
        for path in paths:
            case = volume_case_name(path) if _is_volume(path) else slice_case_name(path)
            if cfg.verify_release:
                # Statistics describe what a split is used as: slices for training and
                # validation, volumes for test (volumes cut or slices stacked count below).
                _verify(path, case, stats[split], count=(split == "test") == _is_volume(path))
            if case not in splits[split]["cases"]:
                splits[split]["cases"].append(case)
            splits[split]["volumes" if _is_volume(path) else "slices"].append(rel(path, out_dir))
    patients = {s: {_patient_of(c) for c in splits[s]["cases"]} for s in splits}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if both := sorted(patients[a] & patients[b]):
            raise ValueError(
                f"{lists}: {both} listed in both {_SPLIT_LISTS[a]} and {_SPLIT_LISTS[b]}; "
                "slices of one patient must not cross the split"
            )
    for split, names in patients.items():  # the unit the test statistics count
        splits[split]["patients"] = sorted(names)
    written: set[Path] = set()
    stacked: dict[str, list[str]] = {"val": [], "test": []}
    for split in stacked:  # volumes needed: stack the cases listed as slices only
        volumes = {volume_case_name(p) for p in entries[split] if _is_volume(p)}
        groups: dict[str, list[Path]] = {}
        for path in entries[split]:
            if not _is_volume(path) and slice_case_name(path) not in volumes:
                groups.setdefault(slice_case_name(path), []).append(path)
        for case in sorted(groups):
            out_path = out_dir / f"{split}_vol_h5" / f"{case}.npy.h5"
            image, label = stack_slices(case, groups[case], out_path)
            if split == "test" and cfg.verify_release:
                stats[split].add_case(case, image, label, None)
            written.add(out_path)
            stacked[split].append(case)
            splits[split]["volumes"].append(rel(out_path, out_dir))
    if not splits["test"]["volumes"]:
        raise ValueError(f"{lists / 'test.txt'}: lists no test volumes or slices")
    sliced: dict[str, list[str]] = {"train": []}
    with_slices = {slice_case_name(p) for p in entries["train"] if not _is_volume(p)}
    for path in entries["train"]:  # slices needed: cut the cases listed as volumes only
        case = volume_case_name(path)
        if not _is_volume(path) or case in with_slices:
            continue
        image, label = read_checked_volume(path)
        for z, cut in enumerate(cut_volume(case, image, label, out_dir / "train_npz", None, path)):
            add_slice_stats(stats["train"], case, image[z], label[z])
            written.add(cut)
            splits["train"]["slices"].append(rel(cut, out_dir))
        sliced["train"].append(case)
    if not splits["train"]["slices"]:
        raise ValueError(f"{lists / 'train.txt'}: lists no training slices or volumes")
    removed = remove_stale(out_dir, _OUT_DIRS, written)
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "layout": "mtunet_release",
        "lists_dir": rel(lists, out_dir),
        "verified": cfg.verify_release,
        "spacing_known": False,
        "stacked_cases": stacked,
        "sliced_cases": sliced,
        "stacked_val_volumes": len(stacked["val"]),
        "removed_stale_files": removed,
    }
    return write_manifest(
        out_dir,
        name="acdc",
        source="release",
        modality="MR",
        class_names=ACDC_CLASSES,
        preprocessing=cfg.preprocessing,
        splits=splits,
        stats=stats,
        source_info=info,
    )
