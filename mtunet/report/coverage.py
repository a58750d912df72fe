"""How often an interval method covers the true mean: a simulation on Dice-like scores.

Studies of ``n`` per-case scores are drawn from distributions shaped like per-case Dice (in
[0, 1], with a known mean), each study gets an interval of its mean by each method of
:mod:`mtunet.report.intervals`, and the coverage is the fraction of studies whose interval
holds the true mean. Two kinds of studies:

- ``"mean"``: n scores of one model, the interval of their mean (:data:`MEAN_SCENARIOS`);
- ``"difference"``: n paired scores of two models on the same cases, correlated through a
  Gaussian copula (a hard case is hard for both), the interval of the mean per-case
  difference (:data:`DIFFERENCE_SCENARIOS`, true mean difference 0 or not).

Each scenario belongs to a *family*: ``tight`` (a Beta around 0.85), ``skewed`` (10 % of the
cases fail near 0, the rest a Beta around 0.8) or ``bimodal``. :data:`TARGETS` says what a
family's coverage must reach. Every draw is seeded: the same arguments give the same numbers.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from mtunet.report.intervals import check_method, mean_bounds
from mtunet.report.seeds_cases import seed_bounds

Kind = Literal["mean", "difference"]
KINDS: tuple[Kind, ...] = ("mean", "difference")
# Case counts of the benchmark grid (the quick default's 4 and 8, the real test sets' 12 and 20).
GRID_N = (4, 5, 6, 8, 10, 12, 16, 20, 30, 40)


@dataclass(frozen=True)
class Target:
    """What a family's coverage must reach: at most ``miss_ratio`` times the nominal miss
    rate (at 95 %: 1.4 -> 93 %, 2.0 -> 90 %). The method choice must reach it from
    ``from_n`` cases on; an interval that misses it at any n is flagged."""

    miss_ratio: float
    from_n: int

    def coverage(self, confidence: float) -> float:
        """The least acceptable coverage at ``confidence`` (rounded to 12 decimals, so that
        0.95 gives 0.93 and 0.9, not 0.9299999999999999)."""
        return round(1.0 - self.miss_ratio * (1.0 - confidence), 12)


# The issue requires the tight target from 8 cases on; the choice holds it at every n. The
# choice needs the skewed one from 20 cases on only: below, one study in 0.9^n has no failure
# case at all, and no interval covers what its sample cannot show (such intervals are flagged).
TARGETS: dict[str, Target] = {
    "tight": Target(miss_ratio=1.4, from_n=2),
    "skewed": Target(miss_ratio=2.0, from_n=20),
}


@dataclass(frozen=True)
class BetaMixture:
    """Per-case scores in [0, 1]: with probability ``w`` a draw from Beta(a, b).

    Attributes:
        components: ``(w, a, b)`` per component, in increasing order of mean; weights sum
            to 1.
    """

    components: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        weights = [w for w, _, _ in self.components]
        if not self.components or abs(sum(weights) - 1.0) > 1e-12 or min(weights) <= 0:
            raise ValueError(f"components: weights must be positive and sum to 1, got {weights}")

    @property
    def mean(self) -> float:
        """The exact mean: the weighted Beta means ``a / (a + b)``."""
        return float(sum(w * a / (a + b) for w, a, b in self.components))

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        """Scores from uniforms: component k takes ``u`` in its slice of [0, 1] of width
        ``w_k`` and maps the rescaled ``u`` through its Beta quantile. The result has the
        mixture's distribution exactly, and is increasing in ``u`` while components do not
        overlap much (so copula correlation carries over to scores).

        Args:
            u: Uniforms in (0, 1), any shape.

        Returns:
            Scores, same shape.
        """
        out = np.empty_like(u)
        edge = 0.0
        for i, (w, a, b) in enumerate(self.components):
            last = i == len(self.components) - 1
            inside = (u >= edge) if last else (u >= edge) & (u < edge + w)
            out[inside] = stats.beta.ppf((u[inside] - edge) / w, a, b)
            edge += w
        return out


@dataclass(frozen=True)
class Scenario:
    """One simulated population of studies.

    Attributes:
        name: Unique name, e.g. ``"skewed"`` or ``"skewed, shifted"``.
        family: ``"tight"``, ``"skewed"`` or ``"bimodal"`` (the key of :data:`TARGETS`).
        kind: ``"mean"`` (scores of ``reference``) or ``"difference"`` (``variant`` minus
            ``reference`` on the same cases).
        reference: The (reference model's) score distribution.
        variant: The other model's scores (``"difference"`` only).
        rho: Correlation of the Gaussian copula pairing the two models' scores.
    """

    name: str
    family: str
    kind: Kind
    reference: BetaMixture
    variant: BetaMixture | None = None
    rho: float = 0.0

    @property
    def true_mean(self) -> float:
        """The mean score, or the mean difference ``variant - reference``."""
        if self.variant is None:
            return self.reference.mean
        return self.variant.mean - self.reference.mean

    def draw_pair(
        self, n_studies: int, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-case scores of ``n_studies`` studies of ``n`` cases: (reference, variant),
        each (S, n); the variant is None for a ``"mean"`` scenario."""
        z = rng.standard_normal((n_studies, n))
        ref = self.reference.from_uniform(stats.norm.cdf(z))
        if self.variant is None:
            return ref, None
        z2 = self.rho * z + np.sqrt(1.0 - self.rho**2) * rng.standard_normal((n_studies, n))
        return ref, self.variant.from_uniform(stats.norm.cdf(z2))

    def draw(self, n_studies: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n_studies`` studies of ``n`` cases: scores, or paired differences, (S, n)."""
        ref, variant = self.draw_pair(n_studies, n, rng)
        return ref if variant is None else variant - ref


@dataclass(frozen=True)
class SeedNoise:
    """How a network trained with another seed scores the same cases (in Dice units).

    Seed ``s`` of a model scores case ``i`` as ``score_i + shift_s + noise_si``: the shift
    (sd ``between``) moves every case of that network, the noise (sd ``within``) each case
    on its own. Both have mean 0, so the true mean difference is the scenario's.
    """

    between: float = 0.01
    within: float = 0.02

    def apply(self, scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """(S, n) per-case scores -> (S, k, n) scores of k seeds."""
        size, n = scores.shape
        shift = self.between * rng.standard_normal((size, k, 1))
        return scores[:, None, :] + shift + self.within * rng.standard_normal((size, k, n))


TIGHT = BetaMixture(((1.0, 17.0, 3.0),))  # mean 0.85, sd 0.078
TIGHT_SHIFTED = BetaMixture(((1.0, 16.2, 3.8),))  # mean 0.81
SKEWED = BetaMixture(((0.1, 2.0, 18.0), (0.9, 16.0, 4.0)))  # failures at 0.1; mean 0.73
SKEWED_SHIFTED = BetaMixture(((0.1, 2.0, 18.0), (0.9, 15.2, 4.8)))  # mean 0.694
BIMODAL = BetaMixture(((0.4, 10.0, 10.0), (0.6, 27.0, 3.0)))  # modes 0.5 and 0.9; mean 0.74
BIMODAL_SHIFTED = BetaMixture(((0.4, 9.2, 10.8), (0.6, 25.8, 4.2)))  # mean 0.70
# Two networks' Dice on the same cases correlate strongly (shared hard cases).
RHO = 0.7

MEAN_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("tight", "tight", "mean", TIGHT),
    Scenario("skewed", "skewed", "mean", SKEWED),
    Scenario("bimodal", "bimodal", "mean", BIMODAL),
)
DIFFERENCE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("tight, equal", "tight", "difference", TIGHT, TIGHT, RHO),
    Scenario("tight, shifted", "tight", "difference", TIGHT, TIGHT_SHIFTED, RHO),
    Scenario("skewed, equal", "skewed", "difference", SKEWED, SKEWED, RHO),
    Scenario("skewed, shifted", "skewed", "difference", SKEWED, SKEWED_SHIFTED, RHO),
    Scenario("bimodal, equal", "bimodal", "difference", BIMODAL, BIMODAL, RHO),
    Scenario("bimodal, shifted", "bimodal", "difference", BIMODAL, BIMODAL_SHIFTED, RHO),
)


def scenarios(kind: Kind) -> tuple[Scenario, ...]:
    """The scenarios of ``kind``; ValueError for an unknown kind."""
    if kind == "mean":
        return MEAN_SCENARIOS
    if kind == "difference":
        return DIFFERENCE_SCENARIOS
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one (scenario, n, ...) cell, independent of which others are run."""
    words = [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng([seed, *words])


def _check_sizes(n: int, n_studies: int) -> None:
    if n < 2:
        raise ValueError(f"n: a coverage needs at least 2 cases per study, got {n}")
    if n_studies < 1:
        raise ValueError(f"n_studies: must be >= 1, got {n_studies}")


def _summary(low: np.ndarray, high: np.ndarray, truth: float) -> dict[str, float]:
    """Coverage (NaN bounds count as a miss) and median width of S intervals (NaN when the
    median interval is unbounded, as a bootstrap-t with few resamples can be)."""
    median = float(np.median(high - low))
    return {
        "coverage": float(np.mean((low <= truth) & (truth <= high))),
        "median_width": median if math.isfinite(median) else math.nan,
    }


def simulate(
    scenario: Scenario,
    n: int,
    methods: Sequence[str],
    confidence: float = 0.95,
    n_studies: int = 2000,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Coverage of each method on ``n_studies`` studies of ``n`` cases from ``scenario``.

    The studies depend on (seed, scenario, n) only, so every method and level sees the same
    studies; the resampling depends on (seed, scenario, n, level, methods), one stream shared
    by the methods (scipy's three bootstraps share one bootstrap distribution).

    Args:
        scenario: The population the studies are drawn from.
        n: Cases per study (>= 2).
        methods: Interval methods (:data:`mtunet.report.intervals.METHODS`).
        confidence: The intervals' level.
        n_studies: Simulated studies.
        n_resamples: Bootstrap resamples per interval.
        seed: Seed of the studies and of the resampling.

    Returns:
        Method -> ``{"coverage": fraction of studies whose interval holds the true mean,
        "median_width": median interval width}``.

    Raises:
        ValueError: ``n`` < 2, ``n_studies`` < 1, or what :func:`mean_bounds` raises.
    """
    _check_sizes(n, n_studies)
    for m in methods:
        check_method(m)
    data = scenario.draw(n_studies, n, _rng(seed, "data", scenario.name, n))
    rng = _rng(seed, "resample", scenario.name, n, confidence, *methods)
    bounds = mean_bounds(data, methods, confidence, n_resamples, rng)
    return {m: _summary(*bounds[m], scenario.true_mean) for m in methods}


def simulate_seeds(
    scenario: Scenario,
    n: int,
    seeds: int,
    methods: Sequence[str],
    confidence: float = 0.95,
    n_studies: int = 2000,
    n_resamples: int = 2000,
    seed: int = 0,
    noise: SeedNoise = SeedNoise(),
) -> dict[str, dict[str, float]]:
    """Like :func:`simulate` for a difference whose two models each have ``seeds`` seeds.

    Each study draws n paired case scores from ``scenario`` (a ``"difference"`` one), then
    ``seeds`` networks per model through ``noise``; the intervals are those of
    :func:`mtunet.report.seeds_cases.seed_bounds`.

    Returns:
        Method -> ``{"coverage", "median_width"}``.

    Raises:
        ValueError: A ``"mean"`` scenario, ``seeds`` < 1, or as :func:`simulate`.
    """
    _check_sizes(n, n_studies)
    if scenario.kind != "difference":
        raise ValueError(f"scenario: {scenario.name!r} is not a difference scenario")
    if seeds < 1:
        raise ValueError(f"seeds: must be >= 1, got {seeds}")
    rng = _rng(seed, "data", scenario.name, n, "seeds", seeds, noise)
    ref, variant = scenario.draw_pair(n_studies, n, rng)
    assert variant is not None  # a difference scenario has a variant
    x, y = noise.apply(variant, seeds, rng), noise.apply(ref, seeds, rng)
    out = {}
    for m in methods:
        gen = _rng(seed, "resample", scenario.name, n, "seeds", seeds, confidence, m)
        out[m] = _summary(*seed_bounds(x, y, m, confidence, n_resamples, gen), scenario.true_mean)
    return out
