"""The ``dataset.json`` manifest: what a preprocessed folder holds, its statistics and its
split lists.

Every preprocessing path collects :class:`SplitStats` per split while it writes slices and
volumes, then writes the manifest last (:func:`write_manifest`), so its presence marks a
complete output folder; :func:`load_manifest` is how later stages read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtunet.fileio import read_json, write_json

MANIFEST_NAME = "dataset.json"
MANIFEST_FORMAT = 1


# --------------------------------------------------------------------------------------
# Statistics for dataset.json
# --------------------------------------------------------------------------------------


@dataclass
class IntensityStats:
    """Running min / max / mean / std over many arrays (float64 accumulators)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")

    def add(self, x: np.ndarray) -> None:
        x64 = x.astype(np.float64, copy=False)
        self.n += x.size
        self.total += float(x64.sum())
        self.total_sq += float(np.square(x64).sum())
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))

    def to_dict(self) -> dict[str, float | int | None]:
        if self.n == 0:
            return {"count": 0, "max": None, "mean": None, "min": None, "std": None}
        mean = self.total / self.n
        var = max(self.total_sq / self.n - mean * mean, 0.0)
        return {
            "count": self.n,
            "max": round(self.hi, 6),
            "mean": round(mean, 6),
            "min": round(self.lo, 6),
            "std": round(float(np.sqrt(var)), 6),
        }


@dataclass
class SplitStats:
    """What dataset.json records per split: shapes, spacings, intensities, class voxels."""

    num_classes: int
    shapes: dict[str, list[int]] = field(default_factory=dict)
    spacings: dict[str, list[float] | None] = field(default_factory=dict)
    intensity: IntensityStats = field(default_factory=IntensityStats)
    raw_intensity: IntensityStats = field(default_factory=IntensityStats)
    class_voxels: np.ndarray | None = None

    def add_case(
        self,
        case: str,
        image: np.ndarray,
        label: np.ndarray,
        spacing: tuple[float, float, float] | None,
        raw: np.ndarray | None = None,
    ) -> None:
        """Record one case (or one slice, with ``case`` its case id: shapes then grow)."""
        self.shapes[case] = [int(s) for s in image.shape]
        self.spacings[case] = None if spacing is None else [round(float(s), 6) for s in spacing]
        self.intensity.add(image)
        if raw is not None:
            self.raw_intensity.add(raw)
        counts = np.bincount(label.ravel(), minlength=self.num_classes)[: self.num_classes]
        self.class_voxels = counts if self.class_voxels is None else self.class_voxels + counts

    def voxels(self, class_names: tuple[str, ...]) -> dict[str, int]:
        counts = self.class_voxels
        if counts is None:
            counts = np.zeros(len(class_names), dtype=np.int64)
        return {name: int(c) for name, c in zip(class_names, counts, strict=True)}


# --------------------------------------------------------------------------------------
# Manifest (dataset.json)
# --------------------------------------------------------------------------------------


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (may start with ``../``)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


@dataclass(frozen=True)
class Manifest:
    """A parsed ``dataset.json``.

    Attributes:
        root: Folder holding dataset.json; every path in it is relative to this folder.
        name: ``"synapse"`` or ``"acdc"``.
        num_classes: Classes including background.
        class_names: Name per class id.
        modality: ``"CT"`` or ``"MR"``.
        preprocessing: For :func:`~mtunet.data.common.normalize`.
        splits: ``{"train"|"val"|"test": {"cases": [...], "slices": [...], "volumes": [...]}}``.
        raw: The whole parsed JSON (counts, shapes, statistics...).
    """

    root: Path
    name: str
    num_classes: int
    class_names: tuple[str, ...]
    modality: str
    preprocessing: dict[str, Any]
    splits: dict[str, dict[str, list[str]]]
    raw: dict[str, Any]

    def paths(self, split: str, kind: str) -> list[Path]:
        """Files of ``split`` (``train``/``val``/``test``) of ``kind`` (``slices``/``volumes``).

        Raises:
            ValueError: Unknown split or kind.
        """
        if split not in self.splits:
            raise ValueError(
                f"{self.root / MANIFEST_NAME}: no split {split!r} (has {sorted(self.splits)})"
            )
        if kind not in ("slices", "volumes"):
            raise ValueError(f"kind: must be 'slices' or 'volumes', got {kind!r}")
        return [self.root / p for p in self.splits[split].get(kind, [])]

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME


def load_manifest(path_or_dir: str | os.PathLike[str], check_files: bool = True) -> Manifest:
    """Read ``dataset.json`` (or the folder holding it).

    Args:
        path_or_dir: The JSON file or its folder.
        check_files: Also check every listed slice and volume file exists.

    Raises:
        FileNotFoundError: No dataset.json, or (``check_files``) a listed file is missing.
        ValueError: Invalid JSON or missing / inconsistent fields.
    """
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / MANIFEST_NAME
    data = read_json(p)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object")
    for key in ("name", "num_classes", "class_names", "modality", "preprocessing", "splits"):
        if key not in data:
            raise ValueError(f"{p}: missing field {key!r}")
    names = tuple(data["class_names"])
    if len(names) != data["num_classes"]:
        raise ValueError(
            f"{p}: num_classes is {data['num_classes']} but class_names has {len(names)} entries"
        )
    splits = data["splits"]
    if not isinstance(splits, dict):
        raise ValueError(f"{p}: splits must be an object")
    root = p.parent
    if check_files:
        for split, entry in splits.items():
            for kind in ("slices", "volumes"):
                for rel_path in entry.get(kind, []):
                    if not (root / rel_path).is_file():
                        raise FileNotFoundError(
                            f"{p}: {split} {kind[:-1]} {rel_path} is listed but not on disk"
                        )
    return Manifest(
        root=root,
        name=str(data["name"]),
        num_classes=int(data["num_classes"]),
        class_names=names,
        modality=str(data["modality"]),
        preprocessing=dict(data["preprocessing"]),
        splits={k: {kk: list(vv) for kk, vv in v.items()} for k, v in splits.items()},
        raw=data,
    )


def case_units(split: Mapping[str, Any]) -> dict[str, str]:
    """Each case of a split -> the patient it belongs to, where the split lists patients.

    ACDC's ED and ES volumes of one patient are not two independent cases: statistics over
    the test set count patients (:func:`mtunet.comparison.build_comparison`). A case belongs
    to the patient whose name it extends (``patient002_ED``, ``case_019_ES``); a case of no
    listed patient, and every case of a split without patients (Synapse), is its own unit.
    """
    patients = sorted((str(p) for p in split.get("patients") or ()), key=len, reverse=True)
    return {
        str(case): next((p for p in patients if case == p or str(case).startswith(p + "_")), case)
        for case in split.get("cases") or ()
    }


def empty_split() -> dict[str, list[str]]:
    return {"cases": [], "slices": [], "volumes": []}


def prepare_out_dir(out_dir: Path) -> None:
    """Remove a stale dataset.json and leftover temporary files before a run.

    The manifest is written last, so until a run completes no later stage accepts the
    folder; hidden ``.*.tmp`` files are what an interrupted :func:`atomic_path` leaves.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for tmp in out_dir.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def remove_stale(out_dir: Path, subdirs: Iterable[str], keep: set[Path]) -> list[str]:
    """Delete slice/volume files in our own output subfolders not written by this run.

    Returns:
        Relative paths of the removed files (so reruns with fewer cases leave no orphans).
    """
    removed = []
    keep_resolved = {k.resolve() for k in keep}
    for sub in subdirs:
        folder = out_dir / sub
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.resolve() not in keep_resolved:
                f.unlink()
                removed.append(rel(f, out_dir))
    return removed


def add_slice_stats(stats: SplitStats, case: str, image: np.ndarray, label: np.ndarray) -> None:
    """Record one 2-D slice of ``case``: its shape becomes (slices so far, H, W)."""
    count = stats.shapes.get(case, [0])[0] + 1
    stats.shapes[case] = [count, int(image.shape[0]), int(image.shape[1])]
    stats.spacings.setdefault(case, None)
    stats.intensity.add(image)
    counts = np.bincount(label.ravel(), minlength=stats.num_classes)[: stats.num_classes]
    stats.class_voxels = counts if stats.class_voxels is None else stats.class_voxels + counts


def manifest_dict(
    *,
    name: str,
    source: str,
    modality: str,
    class_names: tuple[str, ...],
    preprocessing: dict[str, Any],
    splits: dict[str, dict[str, list[str]]],
    stats: dict[str, SplitStats],
    source_info: dict[str, Any],
) -> dict[str, Any]:
    """Assemble the ``dataset.json`` object (the contract's fields plus statistics).

    Extra fields: ``counts`` (cases / slices / volumes per split), ``shapes`` and
    ``spacings`` per split and case ((Z, H, W) and (z, y, x) mm; slices-only cases list
    their slice count as Z), ``intensity`` per split (``normalized`` and, from raw data,
    ``raw``: count, min, max, mean, std), ``class_voxels`` per split and class name, and
    ``source_info`` (input folder relative to the output, configuration, orientation,
    missing / unused cases).
    """
    empty = SplitStats(len(class_names))
    return {
        "format_version": MANIFEST_FORMAT,
        "name": name,
        "source": source,
        "modality": modality,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "preprocessing": preprocessing,
        "splits": splits,
        "counts": {
            s: {k: len(v.get(k, [])) for k in ("cases", "slices", "volumes")}
            for s, v in splits.items()
        },
        "shapes": {s: stats.get(s, empty).shapes for s in splits},
        "spacings": {s: stats.get(s, empty).spacings for s in splits},
        "intensity": {
            s: {
                "normalized": stats.get(s, empty).intensity.to_dict(),
                "raw": stats.get(s, empty).raw_intensity.to_dict(),
            }
            for s in splits
        },
        "class_voxels": {s: stats.get(s, empty).voxels(class_names) for s in splits},
        "source_info": source_info,
    }


def write_manifest(out_dir: Path, **fields: Any) -> dict[str, Any]:
    """Build the manifest (:func:`manifest_dict` arguments) and write ``out_dir/dataset.json``.

    Written last by every preprocessing path, so its presence marks a complete output folder.
    """
    manifest = manifest_dict(**fields)
    write_json(out_dir / "dataset.json", manifest)
    return manifest


def write_list(path: Path, names: Iterable[str]) -> None:
    """Write a split list (one name per line, final newline) atomically."""
    from mtunet.fileio import write_text

    names = list(names)
    write_text(path, "".join(f"{n}\n" for n in names))


def read_list(path: Path) -> list[str]:
    """Read a split list: one entry per non-empty line, whitespace stripped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
