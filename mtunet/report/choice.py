"""Which interval method to use at n cases, and what coverage the chosen interval has there.

The rule (:func:`choose`), applied by ``benchmarks/interval_coverage.py`` to its simulation:
at each n, the first method in the order of preference that meets every coverage target
the choice must reach at n (:data:`mtunet.report.coverage.TARGETS`: the tight family at every
n, the skewed one from 20 cases on); when none does, the method with the best worst-case
margin (coverage minus target), the preferred one among those within Monte Carlo error of
it. The preference puts closed-form t intervals first (no Monte Carlo error, a test that
inverts them), then the bootstraps. A reported interval is flagged (``below_target``) when
its simulated coverage misses any family's target at its n, required there or not.

The result is kept as small tables of n ranges (:data:`MEAN_TABLE`, :data:`DIFFERENCE_TABLE`,
:data:`SEEDS_TABLE`), tested against the committed benchmark and against a fresh simulation.
:func:`coverage_at` simulates the chosen method at the exact n (and seeds) of a reported
interval, so each interval carries its own coverage.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mtunet.report.coverage import TARGETS, SeedNoise, scenarios, simulate, simulate_seeds

TableKind = Literal["mean", "difference", "seeds"]
# Order of preference of each kind's methods (see the module docstring).
PREFERENCE: dict[str, tuple[str, ...]] = {
    "mean": ("t", "bca", "percentile", "basic", "bootstrap_t"),
    "difference": ("t", "bca", "percentile", "basic", "bootstrap_t"),
    "seeds": ("t_seeds_cases", "two_level_bootstrap", "t_cases"),
}
# (first n, last n or None for no end, method): the rule applied to
# benchmarks/results/interval_coverage.json at 95 %.
MEAN_TABLE: tuple[tuple[int, int | None, str], ...] = ((2, None, "t"),)
DIFFERENCE_TABLE: tuple[tuple[int, int | None, str], ...] = ((2, None, "t"),)
SEEDS_TABLE: tuple[tuple[int, int | None, str], ...] = ((2, None, "t_seeds_cases"),)
TABLES: dict[str, tuple[tuple[int, int | None, str], ...]] = {
    "mean": MEAN_TABLE,
    "difference": DIFFERENCE_TABLE,
    "seeds": SEEDS_TABLE,
}


def applicable_targets(n: int) -> list[str]:
    """The families whose coverage target the method choice must meet at ``n`` cases."""
    return [family for family, target in TARGETS.items() if n >= target.from_n]


def margins(coverage: Mapping[str, float], n: int, confidence: float) -> dict[str, float]:
    """Coverage minus target of each family whose target applies at ``n``.

    Args:
        coverage: Family -> simulated coverage (every applicable family must be present).
        n: Cases.
        confidence: The intervals' level (targets scale with it).

    Raises:
        ValueError: An applicable family has no coverage.
    """
    missing = [f for f in applicable_targets(n) if f not in coverage]
    if missing:
        raise ValueError(f"coverage: no value for the target families {missing}")
    return {f: coverage[f] - TARGETS[f].coverage(confidence) for f in applicable_targets(n)}


def choose(
    coverage: Mapping[str, Mapping[str, float]],
    n: int,
    confidence: float,
    n_studies: int,
    preference: Sequence[str],
) -> tuple[str, bool]:
    """The rule of the module docstring at one n.

    Args:
        coverage: Method -> family -> coverage at ``n`` (the family's worst scenario).
        n: Cases.
        confidence: Level the coverage was simulated at.
        n_studies: Studies per simulated cell (sets the Monte Carlo tolerance of a tie).
        preference: Methods in order of preference; each must be in ``coverage``.

    Returns:
        ``(method, meets_targets)``.
    """
    worst = {m: min(margins(coverage[m], n, confidence).values(), default=0.0) for m in preference}
    for m in preference:
        if worst[m] >= 0:
            return m, True
    # Two standard errors of a difference of two coverages near the target.
    p = TARGETS["tight"].coverage(confidence)
    tolerance = 2.0 * math.sqrt(2.0 * p * (1.0 - p) / n_studies)
    best = max(worst.values())
    return next(m for m in preference if worst[m] >= best - tolerance), False


def table_from_choices(choices: Mapping[int, str]) -> tuple[tuple[int, int | None, str], ...]:
    """Per-n choices -> ranges: a range starts at the n where the choice changes (the first
    at 2) and lasts until the next one starts; the last has no end."""
    ns = sorted(choices)
    starts = [i for i, n in enumerate(ns) if i == 0 or choices[n] != choices[ns[i - 1]]]
    rows = []
    for j, i in enumerate(starts):
        first = 2 if j == 0 else ns[i]
        last = ns[starts[j + 1]] - 1 if j + 1 < len(starts) else None
        rows.append((first, last, choices[ns[i]]))
    return tuple(rows)


def method_for(kind: TableKind, n: int) -> str:
    """The method :data:`TABLES` gives ``kind`` at ``n`` cases.

    Raises:
        ValueError: An unknown kind, or ``n`` < 2 (no interval from one case).
    """
    if kind not in TABLES:
        raise ValueError(f"kind: expected one of {sorted(TABLES)}, got {kind!r}")
    if n < 2:
        raise ValueError(f"n: an interval needs at least 2 cases, got {n}")
    for first, last, method in TABLES[kind]:
        if first <= n and (last is None or n <= last):
            return method
    raise ValueError(f"n: {n} is in no range of the {kind} table {TABLES[kind]}")


def family_coverage(per_scenario: Mapping[str, float], kind: str) -> dict[str, float]:
    """Scenario -> coverage into family -> coverage of its worst scenario."""
    kind_scenarios = "difference" if kind == "seeds" else kind
    out: dict[str, float] = {}
    for sc in scenarios(kind_scenarios):  # type: ignore[arg-type]
        if sc.name in per_scenario:
            out[sc.family] = min(out.get(sc.family, 1.0), per_scenario[sc.name])
    return out


@functools.lru_cache(maxsize=256)
def _simulated(
    kind: str, n: int, method: str, confidence: float, seeds: int, n_studies: int,
    n_resamples: int, seed: int,
) -> tuple[tuple[str, float], ...]:  # fmt: skip
    per_scenario = {}
    for sc in scenarios("difference" if kind == "seeds" else kind):  # type: ignore[arg-type]
        if kind == "seeds":
            res = simulate_seeds(sc, n, seeds, [method], confidence, n_studies, n_resamples, seed)
        else:
            res = simulate(sc, n, [method], confidence, n_studies, n_resamples, seed)
        per_scenario[sc.name] = res[method]["coverage"]
    return tuple(sorted(per_scenario.items()))


def coverage_at(
    kind: TableKind,
    n: int,
    method: str,
    confidence: float,
    seeds: int = 1,
    n_studies: int = 2000,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The simulated coverage of one reported interval, and whether it meets the targets.

    Args:
        kind: ``"mean"`` (a mean over cases), ``"difference"`` (a paired difference, one
            seed) or ``"seeds"`` (a paired difference, ``seeds`` seeds per model).
        n: Cases the interval was computed from (>= 2).
        method: Its method.
        confidence: Its level.
        seeds: Seeds per model (``"seeds"`` only; :class:`SeedNoise` default noise).
        n_studies: Simulated studies per scenario.
        n_resamples: Bootstrap resamples per simulated interval.
        seed: Seed of the simulation.

    Returns:
        ``{"coverage": family -> worst scenario's coverage, "coverage_by_scenario",
        "target": family -> least acceptable coverage (every family with a target),
        "target_met": family -> bool, "below_target": any target missed, "required": the
        families whose target the method choice had to meet at n, "n_studies", "seed",
        "seed_noise" (``"seeds"`` only)}``.
    """
    per_scenario = dict(
        _simulated(kind, n, method, confidence, seeds, n_studies, n_resamples, seed)
    )
    coverage = family_coverage(per_scenario, kind)
    target = {f: t.coverage(confidence) for f, t in TARGETS.items()}
    met = {f: coverage[f] >= t for f, t in target.items()}
    out: dict[str, Any] = {
        "coverage": coverage,
        "coverage_by_scenario": per_scenario,
        "target": target,
        "target_met": met,
        "below_target": not all(met.values()),
        "required": applicable_targets(n),
        "n_studies": n_studies,
        "seed": seed,
    }
    if kind == "seeds":
        noise = SeedNoise()
        out["seed_noise"] = {"between": noise.between, "within": noise.within}
    return out


def interval_record(
    kind: TableKind,
    n: int,
    method: str,
    confidence: float,
    seeds: int = 1,
    n_studies: int = 2000,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """What a reported interval is: its method, n, level and simulated coverage at that n.

    Args:
        As :func:`coverage_at`.

    Returns:
        ``{"kind", "method", "n", "confidence", "simulated": True}`` plus the fields of
        :func:`coverage_at` (``"seeds"`` too for kind ``"seeds"``).
    """
    info = coverage_at(kind, n, method, confidence, seeds, n_studies, n_resamples, seed)
    out = {"kind": kind, "method": method, "n": int(n), "confidence": confidence, **info}
    out["simulated"] = True
    if kind == "seeds":
        out["seeds"] = int(seeds)
    return out


def seed_interval_record(k: int, confidence: float) -> dict[str, Any]:
    """The record of a Student-t interval over ``k`` per-seed means. Not simulated: it is
    exact when those means are normal, which means over all test cases nearly are."""
    return {
        "kind": "seed_means",
        "method": "t",
        "n": int(k),
        "confidence": confidence,
        "simulated": False,
        "coverage": {"normal": confidence},
        "target": {},
        "target_met": {},
        "below_target": False,
        "required": [],
        "note": "exact for normally distributed per-seed means",
    }


def coverage_settings(
    confidence: float, n_studies: int, n_resamples: int, seed: int
) -> dict[str, Any]:
    """What the records' simulated coverages refer to: settings, targets, scenarios."""
    noise = SeedNoise()
    return {
        "n_studies": n_studies,
        "n_resamples": n_resamples,
        "seed": seed,
        "seed_noise": {"between": noise.between, "within": noise.within},
        "targets": {
            f: {"miss_ratio": t.miss_ratio, "from_n": t.from_n, "coverage": t.coverage(confidence)}
            for f, t in TARGETS.items()
        },
        "scenarios": {
            sc.name: {"kind": sc.kind, "family": sc.family, "true_mean": sc.true_mean}
            for kind in ("mean", "difference")
            for sc in scenarios(kind)  # type: ignore[arg-type]
        },
        "benchmark": "benchmarks/results/interval_coverage.json",
    }
