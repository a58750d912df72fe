"""A dataset's comparison read into the report's terms: every variant's means with their
intervals (:class:`Estimate`, :class:`Interval`) and every tested difference with its verdict
(:class:`Difference`), gathered in :class:`Results`.

Values are kept as ``comparison.json`` recorded them (a number, ``None`` or NaN), so the CSV
tables hold exactly what the JSON holds; the ``text`` properties give the formatted words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtunet.report.formatting import METRIC_LABELS, diff_text, fmt, is_number, overrides_text
from mtunet.report.formatting import verdict as verdict_words

#: Short names of the interval methods (``mtunet.report.intervals``, ``seeds_cases``).
METHOD_NAMES = {
    "t": "t",
    "t_seeds_cases": "t over seeds and cases",
    "bca": "BCa",
    "percentile": "percentile bootstrap",
    "basic": "basic bootstrap",
    "bootstrap_t": "bootstrap-t",
}
#: The simulated score shapes an interval's coverage is reported on, in order.
FAMILIES = ("tight", "skewed", "bimodal")


@dataclass(frozen=True)
class Interval:
    """A confidence interval of a mean or of a mean difference, with how it was made.

    Attributes:
        low: Lower bound as recorded (``None`` or NaN when it was not computed).
        high: Upper bound as recorded.
        level: Confidence level, e.g. ``0.95`` (a difference's: the Bonferroni-adjusted one).
        over: What the interval is over: ``"seeds"`` (the per-seed means), ``"cases"`` (the
            test cases or the patients they belong to) or ``"seeds and cases"``.
        method: The method (``t``, ``t_seeds_cases``, ...; None when not recorded).
        n: The cases (or seeds) it was computed from.
        coverage: Its simulated coverage at that n and level, per score shape (``tight``,
            ``skewed``, ``bimodal``); empty when not simulated.
        below_target: The simulated coverage misses a target (docs/statistics.md).
    """

    low: Any
    high: Any
    level: float
    over: str
    method: str | None = None
    n: Any = None
    coverage: Mapping[str, float] = field(default_factory=dict)
    below_target: bool = False

    @classmethod
    def from_record(
        cls, low: Any, high: Any, level: float, over: str, record: Mapping[str, Any] | None
    ) -> Interval:
        """From the bounds and the comparison's record of the interval (method, coverage)."""
        rec = record or {}
        coverage = rec.get("coverage") if rec.get("simulated") else None
        return cls(
            low=low,
            high=high,
            level=float(rec.get("confidence") or level),
            over=over,
            method=rec.get("method"),
            n=rec.get("n"),
            coverage={f: float(coverage[f]) for f in FAMILIES if f in (coverage or {})},
            below_target=bool(rec.get("below_target")),
        )

    @property
    def shown(self) -> bool:
        """Both bounds are numbers (an interval that is not is left out of the text)."""
        return is_number(self.low) and is_number(self.high)

    @property
    def method_name(self) -> str:
        """The method in words (``t``, ``t over seeds and cases``; ``""`` when not recorded)."""
        return METHOD_NAMES.get(self.method, self.method) if self.method else ""

    @property
    def how(self) -> str:
        """The method and its simulated coverage: ``t, n = 12; covers 95/80/94 %*``."""
        if self.method is None:
            return ""
        unit = "seeds" if self.over == "seeds" else "cases"
        text = f"{self.method_name}, {self.n} {unit}"
        if self.coverage:
            cov = "/".join(f"{100 * self.coverage[f]:.0f}" for f in FAMILIES if f in self.coverage)
            text += f"; covers {cov} %" + ("*" if self.below_target else "")
        return text

    def format(self, digits: int = 2) -> str:
        """``[88.00, 94.10] cases (t, 12 cases; covers 95/80/94 %*)``."""
        how = f" ({self.how})" if self.how else ""
        return f"[{fmt(self.low, digits)}, {fmt(self.high, digits)}] {self.over}{how}"

    @property
    def text(self) -> str:
        """:meth:`format` with two decimals."""
        return self.format()


@dataclass(frozen=True)
class Estimate:
    """A mean over the study's runs with its intervals.

    Attributes:
        mean: The mean (DSC in %, HD95 in voxels, NSD in %), as recorded.
        seeds: Interval over the per-seed means (None with fewer than two seeds).
        cases: Interval over the test cases (None when not recorded).
        n_seeds: Seeds averaged.
        n_cases: Test cases (or patients) the case interval counts.
    """

    mean: Any = None
    seeds: Interval | None = None
    cases: Interval | None = None
    n_seeds: Any = None
    n_cases: Any = None

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any] | None, level: float = 0.95) -> Estimate:
        """From a comparison entry ``{"mean", "seed_ci", "case_ci", "seed_interval",
        "case_interval", "n_seeds", "n_cases"}``."""
        s = stats or {}

        def interval(key: str, over: str) -> Interval | None:
            ci = s.get(f"{key}_ci")
            record = s.get(f"{key}_interval")
            return Interval.from_record(ci[0], ci[1], level, over, record) if ci else None

        return cls(
            mean=s.get("mean"),
            seeds=interval("seed", "seeds"),
            cases=interval("case", "cases"),
            n_seeds=s.get("n_seeds"),
            n_cases=s.get("n_cases"),
        )

    @property
    def intervals(self) -> tuple[Interval, ...]:
        """The intervals there are, seeds first."""
        return tuple(i for i in (self.seeds, self.cases) if i is not None)

    def format(self, digits: int = 2) -> str:
        """``91.30 [90.10, 92.40] seeds (t, 3 seeds); [88.00, 94.10] cases (t, 12 cases;
        covers 95/80/94 %*)`` (``-`` without a mean)."""
        if not is_number(self.mean):
            return "-"
        parts = [i.format(digits) for i in self.intervals if i.shown]
        return fmt(self.mean, digits) + (" " + "; ".join(parts) if parts else "")

    @property
    def text(self) -> str:
        """:meth:`format` with two decimals."""
        return self.format()


def interval_text(stats: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A comparison entry's mean with its intervals (:meth:`Estimate.format`)."""
    return Estimate.from_stats(stats).format(digits)


@dataclass(frozen=True)
class Difference:
    """One tested difference: ``variant`` minus the reference on ``metric``, paired on cases.

    Attributes:
        group: ``"models"`` or ``"ablations"``.
        variant: The variant compared with the reference.
        metric: ``dsc``, ``hd95``, ...
        diff: Mean paired difference (variant minus reference).
        interval: Its interval at the Bonferroni-adjusted level of its family (the table's
            comparisons of one metric); with several seeds over seeds and cases.
        p_value: The interval's own two-sided p (the t-test it inverts).
        p_adjusted: ``p_value`` times the family's size (capped at 1).
        m: Comparisons in the family.
        n_cases: Paired test cases (or patients).
        significant: The interval excludes 0 (equivalently ``p_adjusted`` < alpha).
        verdict: The words: ``"not significant"``, ``"significantly lower (worse)"``, ...
    """

    group: str
    variant: str
    metric: str
    diff: Any
    interval: Interval
    p_value: Any
    p_adjusted: Any
    m: Any
    n_cases: Any
    significant: bool
    verdict: str

    @classmethod
    def from_row(
        cls, group: str, metric: str, row: Mapping[str, Any], level: float = 0.95
    ) -> Difference:
        """From one row of ``comparison.json``'s ``comparisons[group][metric]``."""
        higher = METRIC_LABELS.get(metric, (metric, True))[1]
        over = "seeds and cases" if "seeds" in (row.get("sources") or ()) else "cases"
        return cls(
            group=group,
            variant=str(row.get("variant")),
            metric=metric,
            diff=row.get("diff"),
            interval=Interval.from_record(
                row.get("ci_low"),
                row.get("ci_high"),
                float(row.get("confidence") or level),
                over,
                row.get("coverage"),
            ),
            p_value=row.get("p_value"),
            p_adjusted=row.get("p_adjusted"),
            m=row.get("m"),
            n_cases=row.get("n"),
            significant=bool(row.get("significant")),
            verdict=verdict_words(row, higher),
        )

    @property
    def text(self) -> str:
        """``-1.20 [-3.00, 0.40]``."""
        return diff_text({"diff": self.diff, "ci_low": self.interval.low,
                          "ci_high": self.interval.high})  # fmt: skip


@dataclass(frozen=True)
class VariantResult:
    """One model or ablation of the study.

    Attributes:
        name: Variant name (``mtunet``, ``no_gaussian``).
        kind: ``"model"`` or ``"ablation"``.
        change: An ablation's change of the model section (``gaussian=False``); ``""``.
        seeds: Training seeds.
        params_m: Parameters in millions (None when not recorded).
        gflops: GFLOPs of one forward pass (None when not recorded).
        input: Input size of that forward pass, ``1x1x224x224`` (None when not recorded).
        estimates: Per metric key recorded (``dsc``, ``hd95``, ``hd95_monai``, ``nsd``).
        per_class_dsc: Mean DSC per foreground class, by class name.
    """

    name: str
    kind: str
    change: str
    seeds: tuple[Any, ...]
    params_m: float | None
    gflops: Any
    input: str | None
    estimates: Mapping[str, Estimate]
    per_class_dsc: Mapping[str, Any]

    @classmethod
    def from_entry(
        cls, name: str, entry: Mapping[str, Any], classes: Sequence[str], level: float
    ) -> VariantResult:
        """From ``comparison.json``'s ``variants[name]``."""
        cx = entry.get("complexity") or {}
        params = cx.get("params")
        per_class = entry.get("per_class") or {}
        estimates = {
            key: Estimate.from_stats(value, level)
            for key, value in entry.items()
            if key in METRIC_LABELS or (isinstance(value, Mapping) and "mean" in value)
        }
        return cls(
            name=name,
            kind=str(entry.get("kind") or "model"),
            change=overrides_text(entry.get("overrides")),
            seeds=tuple(entry.get("seeds") or ()),
            params_m=params / 1e6 if is_number(params) else None,
            gflops=cx.get("gflops"),
            input="x".join(str(v) for v in cx["input"]) if cx.get("input") else None,
            estimates=estimates,
            per_class_dsc={
                c: ((per_class.get(c) or {}).get("dsc") or {}).get("mean") for c in classes
            },
        )

    @property
    def label(self) -> str:
        """The name, with an ablation's change: ``no_gaussian (gaussian=False)``."""
        return f"{self.name} ({self.change})" if self.change else self.name

    def estimate(self, metric: str) -> Estimate:
        """The metric's estimate (an empty one, shown as ``-``, when not recorded)."""
        return self.estimates.get(metric) or Estimate()

    @property
    def dsc(self) -> Estimate:
        """Mean DSC (%) with its intervals."""
        return self.estimate("dsc")

    @property
    def hd95(self) -> Estimate:
        """Mean HD95 (voxels) with its intervals."""
        return self.estimate("hd95")


@dataclass(frozen=True)
class Results:
    """One dataset's comparison: every variant's estimates and every tested difference.

    Attributes:
        reference: The model every other model is compared with.
        ablation_reference: The model the ablations were tested against.
        models: The models, reference first (the study's order).
        ablations: The ablations, in the study's order.
        classes: Foreground class names of the comparison.
        confidence: Confidence level of every interval, e.g. ``0.95``.
        variants: Every variant's result, by name.
        differences: Every tested difference, in the comparison's order.
    """

    reference: str
    ablation_reference: str
    models: tuple[str, ...]
    ablations: tuple[str, ...]
    classes: tuple[str, ...]
    confidence: float
    variants: Mapping[str, VariantResult]
    differences: tuple[Difference, ...]

    @classmethod
    def from_comparison(
        cls, comparison: Mapping[str, Any], models: Sequence[str], ablations: Sequence[str]
    ) -> Results:
        """From ``comparison.json`` and the study's order of its variants."""
        confidence = float(comparison.get("confidence") or 0.95)
        classes = tuple(comparison.get("class_names") or ())
        tests = comparison.get("comparisons") or {}
        reference = str(comparison["reference"])
        return cls(
            reference=reference,
            ablation_reference=str(comparison.get("ablation_reference") or reference),
            models=tuple(models),
            ablations=tuple(ablations),
            classes=classes,
            confidence=confidence,
            variants={
                name: VariantResult.from_entry(name, entry, classes, confidence)
                for name, entry in comparison["variants"].items()
            },
            differences=tuple(
                Difference.from_row(group, metric, row, confidence)
                for group in ("models", "ablations")
                for metric, rows in (tests.get(group) or {}).items()
                for row in rows or ()
            ),
        )

    @property
    def level(self) -> int:
        """The confidence level in percent: ``95``."""
        return round(100 * self.confidence)

    @property
    def other_models(self) -> tuple[str, ...]:
        """The models compared with the reference (all but the reference)."""
        return tuple(m for m in self.models if m != self.reference)

    def tested_metrics(self, group: str) -> list[str]:
        """The metrics tested in ``group``, in the comparison's order."""
        return list(dict.fromkeys(d.metric for d in self.differences if d.group == group))

    def difference(self, group: str, variant: str, metric: str) -> Difference | None:
        """The test of ``variant`` on ``metric`` in ``group``, or None when not tested."""
        return next(
            (
                d
                for d in self.differences
                if (d.group, d.variant, d.metric) == (group, variant, metric)
            ),
            None,
        )
