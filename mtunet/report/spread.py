"""How far a rerun on another machine moved the study's numbers: the measurement of
``benchmarks/rerun_spread.py``, read for the report.

The measurement holds for the configuration it was made on only, so it records
:func:`study_digest` of ``params.yaml``, and :func:`load_spread` returns it only when the
current parameters give the same digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtunet.config import TRAIN_RUNTIME_FIELDS
from mtunet.fileio import read_json

#: The ``params.yaml`` sections that decide the study's numbers (not ``report``, not
#: ``resources``: where and how fast the runs go changes no number).
NUMBER_SECTIONS = ("datasets", "model", "train", "study", "evaluate")


def study_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the sections of ``params`` that decide the study's numbers, less the
    ``train`` settings that change none (:data:`mtunet.config.TRAIN_RUNTIME_FIELDS`)."""
    sections = {k: params.get(k) for k in NUMBER_SECTIONS}
    if isinstance(sections["train"], Mapping):
        train = sections["train"]
        sections["train"] = {k: v for k, v in train.items() if k not in TRAIN_RUNTIME_FIELDS}
    text = json.dumps(sections, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RerunSpread:
    """One dataset's reruns on simulated other machines, against the committed study.

    Attributes:
        reruns: The simulated differences (``1 thread``, ``other vendor``, ...), in the
            file's (sorted) order.
        moves: Variant -> metric -> rerun -> the rerun's mean minus the committed mean.
        largest: Variant -> metric -> the largest absolute move over the reruns.
        verdicts: Comparison key (``models/dsc/unet``) -> rerun -> whether the verdict held.
        every_verdict_held: Every comparison of this dataset gave the committed verdict in
            every rerun.
        source: The measurement's file, as given.
    """

    reruns: tuple[str, ...]
    moves: Mapping[str, Mapping[str, Mapping[str, float]]]
    largest: Mapping[str, Mapping[str, float]]
    verdicts: Mapping[str, Mapping[str, bool]]
    every_verdict_held: bool
    source: str

    @property
    def changed(self) -> dict[str, list[str]]:
        """Comparison key -> the reruns in which its verdict changed (held ones absent)."""
        out = {
            key: [r for r, held in per.items() if not held] for key, per in self.verdicts.items()
        }
        return {key: runs for key, runs in sorted(out.items()) if runs}


def load_spread(path: Path, params: Mapping[str, Any], dataset: str) -> RerunSpread | None:
    """The measured rerun spread of ``dataset``; None when there is no measurement of this
    configuration (no file, or one made with other parameters)."""
    if not path.is_file():
        return None
    doc = read_json(path)
    if doc.get("study_digest") != study_digest(params) or dataset not in doc.get("committed", {}):
        return None
    reruns = tuple(doc.get("reruns") or {})
    moves: dict[str, dict[str, dict[str, float]]] = {}
    verdicts: dict[str, dict[str, bool]] = {}
    for rerun in reruns:
        res = doc["reruns"][rerun]["results"][dataset]
        for name, by_metric in res["variants"].items():
            for metric, v in by_metric.items():
                moves.setdefault(name, {}).setdefault(metric, {})[rerun] = float(v["move"])
        for key, c in res["comparisons"].items():
            verdicts.setdefault(key, {})[rerun] = bool(c["same"])
    largest = {
        name: {m: max(abs(x) for x in per.values()) for m, per in by_metric.items()}
        for name, by_metric in moves.items()
    }
    return RerunSpread(
        reruns=reruns,
        moves=moves,
        largest=largest,
        verdicts=verdicts,
        every_verdict_held=all(all(v.values()) for v in verdicts.values()),
        source=path.as_posix(),
    )
