"""The data model the report template receives: a :class:`Report` with one
:class:`DatasetReport` per dataset.

Each dataset carries its comparison (:class:`~mtunet.report.results.Results`: estimates with
intervals, differences with verdicts), its tables as DataFrames (:class:`ReportTable`), its
figures' paths (:class:`Figure`), what the study's size allows (:class:`Sampling`) and the
protocol facts (:class:`Protocol`). The template (``templates/report.md.j2``) lays them
out; ``docs/report.md`` lists every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mtunet.report.results import Interval, Results, VariantResult
from mtunet.report.spread import RerunSpread


@dataclass(frozen=True)
class ReportTable:
    """A table of the report, written to ``tables/<stem>.csv`` and ``.tex``.

    Attributes:
        stem: File name without suffix under ``tables/``.
        caption: The caption (also the LaTeX caption).
        data: Full-precision numbers, machine-readable columns (the CSV file).
        display: The formatted cells a reader sees, with the reader's headers (all strings);
            the template's ``markdown`` filter turns it into a Markdown table.
    """

    stem: str
    caption: str
    data: pd.DataFrame
    display: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    """A figure of the report.

    Attributes:
        path: The PNG, relative to ``report.md`` (``figures/synapse_forest.png``).
        data: The figure's data (CSV) relative to ``report.md``, when written.
    """

    path: str
    data: str | None = None


@dataclass(frozen=True)
class Sampling:
    """What the study's size allows: the facts behind the paragraph on reading the intervals.

    Attributes:
        level: Confidence level in percent.
        n_seeds: Training seeds of the reference.
        t_quantile: Student-t quantile of the seed interval (None below two seeds).
        unit: What the case intervals and the tests count: ``"case"``, or ``"patient"``
            when a patient's volumes are averaged into one unit (ACDC's ED and ES).
        n_units: Test cases (or patients) the intervals and tests count (None when not
            recorded).
        n_test_cases: Test cases (volumes) evaluated (None when not recorded).
        mean_interval: The reference's DSC case interval (its method and simulated
            coverage at ``n_units``), None when not recorded.
        targets: The coverage targets per score shape (``{"tight": 0.93, "skewed": 0.9}``).
        target_from: From how many cases on each target applies (``{"tight": 8, ...}``).
        m: Comparisons per family, by group (``{"models": 1, "ablations": 5}``).
        alpha: The family-wise significance level (1 - confidence).
        spread: The measured rerun spread on other machines (None when not measured for
            this configuration).
    """

    level: int
    n_seeds: int
    t_quantile: float | None
    unit: str
    n_units: int | None
    n_test_cases: int | None
    mean_interval: Interval | None
    targets: Mapping[str, float]
    target_from: Mapping[str, int]
    m: Mapping[str, int]
    alpha: float
    spread: RerunSpread | None = None


@dataclass(frozen=True)
class Protocol:
    """How the reference model's first seed was trained and evaluated, in words and numbers.

    Attributes:
        n_cases: Test cases evaluated (``"?"`` when not recorded).
        study: The study's models, ablations and seeds.
        split: The data split, or why it is not available.
        run: The run described: ``mtunet, seed 1``.
        selection: How the checkpoint was chosen.
        training: Optimizer, schedule and network, and where they differ from the paper.
        machine: Where training ran and what that makes reproducible.
        empty_policy: ``"published"`` or ``"nan"``: the empty-mask convention.
        empty_counts: (case, class) pairs with an empty mask: ``gt_empty``, ``pred_empty``,
            ``both_empty``.
        hd95_mm: Mean HD95 in mm (None without spacing).
        nsd_tolerance: The surface Dice tolerance in words: ``τ = 2 mm``.
    """

    n_cases: Any
    study: str
    split: str
    run: str
    selection: str
    training: str
    machine: str
    empty_policy: str
    empty_counts: Mapping[str, Any]
    hd95_mm: float | None
    nsd_tolerance: str


@dataclass(frozen=True)
class DatasetReport:
    """Everything the template shows of one dataset.

    Attributes:
        name: Dataset key (``synapse``).
        title: Its title (``Synapse multi-organ CT``).
        data_source: The metrics file's ``data_source`` (``synthetic``, ``raw``, ``release``).
        data_label: That in words (``synthetic phantoms``).
        results: The comparison: estimates and differences.
        sampling: What the study's size allows.
        tables: By kind: ``models``, ``vs_reference``, ``ablations``, ``surface_metrics``,
            ``per_class``, ``published`` (a table that could not be made is absent).
        figures: By kind: ``forest``, ``dice_per_case``, ``dice_per_class``, ``training``,
            ``qualitative`` (a figure without its inputs is absent).
        curves: The training curves found (``loss``, ``epoch_loss``, ``lr``, ``val_dice``).
        protocol: The protocol facts.
        baseline: The intensity threshold baseline (``dsc``, ``rule``, ...), when recorded.
        published_note: Where the published numbers come from, when known.
        comparison: ``comparison.json`` as read, for anything the model does not name.
        metrics: ``metrics/<ds>.json`` as read.
    """

    name: str
    title: str
    data_source: Any
    data_label: str
    results: Results
    sampling: Sampling
    tables: Mapping[str, ReportTable]
    figures: Mapping[str, Figure]
    curves: tuple[str, ...]
    protocol: Protocol
    baseline: Mapping[str, Any] | None
    published_note: str | None
    comparison: Mapping[str, Any] = field(repr=False)
    metrics: Mapping[str, Any] = field(repr=False)

    @property
    def synthetic(self) -> bool:
        """The study ran on generated phantoms."""
        return self.data_source == "synthetic"

    @property
    def reference(self) -> str:
        """The reference model."""
        return self.results.reference

    @property
    def ref(self) -> VariantResult:
        """The reference model's result."""
        return self.results.variants[self.results.reference]


@dataclass(frozen=True)
class Report:
    """The whole report.

    Attributes:
        title: Heading (``report.title``).
        datasets: One :class:`DatasetReport` per dataset, in report order.
        experiments: The experiment comparison table (baseline, ``dvc exp`` runs, workspace).
        n_experiments: ``dvc exp`` runs found.
        notes: Inputs that were missing or unreadable, in words.
    """

    title: str
    datasets: tuple[DatasetReport, ...]
    experiments: ReportTable
    n_experiments: int
    notes: tuple[str, ...]

    @property
    def synthetic(self) -> bool:
        """Some dataset ran on synthetic phantoms."""
        return any(ds.synthetic for ds in self.datasets)
