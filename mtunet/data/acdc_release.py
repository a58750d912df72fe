"""ACDC as MT-UNet's preprocessed release distributes it, validated and indexed in place.

Layout (``lists_ACDC/{train,valid,test}.txt``): slices listed in ``train.txt`` /
``valid.txt`` under ``train/`` / ``valid/`` (or the folder itself) as
``case_XXX_sliceED_N.npz`` with ``img`` and ``label``; test volumes
``case_XXX_volume_ED.npz`` under ``test/``. Every listed file is checked (and with
``verify_release`` read and validated) and indexed in place. Case ids are ``case_XXX_ED`` /
``case_XXX_ES``; the lists are MT-UNet's split.

The release lists its validation patients as slices only. Each validation case's slices are
stacked (in slice-number order) into ``val_vol_h5/case_XXX_ED.npy.h5`` in the output folder,
the one thing written there, so that best-validation model selection
(:func:`mtunet.train.validation_dice` over the manifest's ``val`` volumes) works.
Release files carry no voxel spacing: ``source_info.spacing_known`` is false, the
volumes have no ``spacing`` attribute, and evaluation reports HD95 in voxels only.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.data.acdc import ACDC_MAX_ID, AcdcConfig
from mtunet.data.common import (
    ACDC_CLASSES,
    check_image,
    check_labels,
    read_slice,
    read_volume,
    slice_case_name,
    volume_case_name,
    write_h5,
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
_SLICE_NUMBER_RE = re.compile(r"(\d+)\.(?:npz|h5)$")
_PATIENT_RE = re.compile(r"^(\D*\d+)")


def _patient_of(case: str) -> str:
    """``case_019_ED`` -> ``case_019`` (the name up to its first number)."""
    m = _PATIENT_RE.match(case)
    return m.group(1) if m else case


def is_release(raw_dir: Path) -> bool:
    """True when ``raw_dir`` holds MT-UNet's release (a ``lists_ACDC`` folder)."""
    return (raw_dir / "lists_ACDC").is_dir()


def slice_number(path: Path) -> int:
    """The slice number ending a slice file name (``case_019_sliceED_3.npz`` -> 3;
    ``patient001_frame01_slice_10.h5`` -> 10).

    Raises:
        ValueError: The name ends in no number.
    """
    m = _SLICE_NUMBER_RE.search(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: no slice number at the end of the file name")
    return int(m.group(1))


def stack_slices(case: str, paths: list[Path], out_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Stack one case's 2-D slice files, in slice-number order, into a volume file.

    Every slice is read and validated (finite image, label ids 0..3); the volume is written
    with :func:`~mtunet.data.common.write_h5` (atomic, byte-identical on reruns), with no
    ``spacing`` attribute (slices carry none) and the stacked file names as ``source_slices``.

    Args:
        case: Case id (named in errors).
        paths: The case's slice files (any order).
        out_path: Volume file to write, e.g. ``val_vol_h5/case_019_ED.npy.h5``.

    Returns:
        ``(image float32 (Z, H, W), label uint8 (Z, H, W))`` as written.

    Raises:
        ValueError: No slices, two slices with one number, slices of different shapes, or
            a slice failing the checks (naming the file).
    """
    if not paths:
        raise ValueError(f"{case}: no slices to stack into {out_path}")
    numbered = sorted((slice_number(p), str(p), Path(p)) for p in paths)
    for (n1, _, p1), (n2, _, p2) in itertools.pairwise(numbered):
        if n1 == n2:
            raise ValueError(f"{p1} and {p2}: two slices numbered {n1} for case {case}")
    images, labels = [], []
    for _, _, path in numbered:
        image, label = read_slice(path)
        check_image(image, path)
        label = check_labels(label, ACDC_MAX_ID, path).astype(np.uint8)
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"{path}: slice shape {image.shape} differs from {numbered[0][2].name} "
                f"({images[0].shape}); the slices of {case} cannot be stacked"
            )
        images.append(image)
        labels.append(label)
    volume, volume_label = np.stack(images), np.stack(labels)
    names = "\n".join(path.name for _, _, path in numbered)
    write_h5(out_path, {"image": volume, "label": volume_label}, {"source_slices": names})
    return volume, volume_label


def _release_file(raw_dir: Path, sub: str, entry: str, list_file: Path) -> Path:
    name = entry if entry.endswith(".npz") else f"{entry}.npz"
    for path in (raw_dir / sub / name, raw_dir / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{list_file}: lists {entry}, not on disk ({raw_dir / sub / name})")


def index_release(cfg: AcdcConfig, raw_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Validate MT-UNet's ACDC release in ``raw_dir`` and index it in ``out_dir``.

    Args:
        cfg: :class:`~mtunet.data.acdc.AcdcConfig` (``verify_release``; the release's own
            lists are the split).
        raw_dir: The release folder (``lists_ACDC/`` and the listed files).
        out_dir: Output folder: ``dataset.json`` (written last) and ``val_vol_h5/``.

    Returns:
        The manifest dict written to ``out_dir/dataset.json``.

    Raises:
        FileNotFoundError: Missing folder, list or listed file.
        ValueError: An empty train / test list, a bad file (naming it), validation slices
            that cannot be stacked, or a patient listed on two sides of the split.
    """
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: input folder not found")
    lists = raw_dir / "lists_ACDC"
    subdirs = {"train": "train", "val": "valid", "test": "test"}
    entries: dict[str, list[Path]] = {}
    for split, list_name in _SPLIT_LISTS.items():
        list_file = lists / list_name
        if split == "val" and not list_file.is_file():
            entries[split] = []
            continue
        names = read_list(list_file)
        if split != "val" and not names:
            raise ValueError(f"{list_file}: empty split list")
        entries[split] = [_release_file(raw_dir, subdirs[split], n, list_file) for n in names]
    prepare_out_dir(out_dir)
    splits = {"train": empty_split(), "val": empty_split(), "test": empty_split()}
    stats = {s: SplitStats(len(ACDC_CLASSES)) for s in splits}
    for split, paths in entries.items():
        for path in paths:
            is_volume = "_volume" in path.name
            case = volume_case_name(path) if is_volume else slice_case_name(path)
            if cfg.verify_release:
                if is_volume:
                    image, label, spacing, _ = read_volume(path)
                else:
                    image, label = read_slice(path)
                check_image(image, path)
                check_labels(label, ACDC_MAX_ID, path)
                if is_volume:
                    stats[split].add_case(case, image, label, spacing)
                else:
                    add_slice_stats(stats[split], case, image, label)
            if case not in splits[split]["cases"]:
                splits[split]["cases"].append(case)
            splits[split]["volumes" if is_volume else "slices"].append(rel(path, out_dir))
    if not splits["test"]["volumes"]:
        raise ValueError(f"{lists / 'test.txt'}: lists no test volumes (*_volume_*.npz)")
    patients = {s: {_patient_of(c) for c in splits[s]["cases"]} for s in splits}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if both := sorted(patients[a] & patients[b]):
            raise ValueError(
                f"{lists}: {both} listed in both {_SPLIT_LISTS[a]} and {_SPLIT_LISTS[b]}; "
                "slices of one patient must not cross the split"
            )
    # Validation is listed as slices: stack each case's slices into a volume (best_val).
    with_volume = {volume_case_name(p) for p in entries["val"] if "_volume" in p.name}
    groups: dict[str, list[Path]] = {}
    for path in entries["val"]:
        if "_volume" not in path.name and slice_case_name(path) not in with_volume:
            groups.setdefault(slice_case_name(path), []).append(path)
    written: set[Path] = set()
    for case in sorted(groups):
        out_path = out_dir / "val_vol_h5" / f"{case}.npy.h5"
        stack_slices(case, groups[case], out_path)
        written.add(out_path)
        splits["val"]["volumes"].append(rel(out_path, out_dir))
    removed = remove_stale(out_dir, ("val_vol_h5",), written)
    info = {
        "input_dir": rel(raw_dir, out_dir),
        "config": cfg.to_dict(),
        "layout": "mtunet_release",
        "lists_dir": rel(lists, out_dir),
        "verified": cfg.verify_release,
        "spacing_known": False,
        "stacked_val_volumes": len(written),
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
