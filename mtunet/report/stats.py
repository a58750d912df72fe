"""Small, pure statistics for comparing runs: intervals, paired tests, multiple comparisons.

Two levels of variation appear in the study and each has its own interval:

- across training seeds (a handful of per-seed means): :func:`t_interval`, the Student-t
  interval of the mean;
- across test cases (one score per case): :func:`bootstrap_interval`, the percentile
  bootstrap of the mean, and :func:`paired_difference` for two methods scored on the same
  cases (bootstrap interval of the mean difference + Wilcoxon signed-rank test).

:func:`holm` adjusts a family of p-values (Holm–Bonferroni) and :func:`describe_difference`
turns one comparison into a plain-English phrase for the report.

Only numpy and scipy are used; every function is deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

# Bootstrap resamples are drawn in chunks of at most this many indices (int64: 32 MiB), so
# memory stays bounded for large numbers of cases.
_MAX_CHUNK_ELEMENTS = 1 << 22


def _as_values(values: Any, name: str) -> np.ndarray:
    """1-D float64 array without NaN/inf; raises ValueError naming the problem."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: no values")
    if np.isnan(arr).any():
        raise ValueError(
            f"{name}: {int(np.isnan(arr).sum())} NaN value(s); drop them before calling"
        )
    if np.isinf(arr).any():
        raise ValueError(f"{name}: infinite value(s)")
    return arr


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence: must lie strictly between 0 and 1, got {confidence!r}")
    return c


def _all_equal(arr: np.ndarray) -> bool:
    return bool(np.all(arr == arr[0]))


def t_interval(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean (e.g. over per-seed means).

    The interval is ``mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n)`` with ``s`` the sample
    standard deviation (``ddof=1``), as ``scipy.stats.t.interval(confidence, n - 1,
    loc=mean, scale=scipy.stats.sem(values))``.

    Args:
        values: 1-D sequence of finite numbers.
        confidence: Confidence level in (0, 1).

    Returns:
        ``(mean, low, high)``. With one value the interval is undefined: ``(mean, nan,
        nan)``. When all values are equal: ``(m, m, m)`` (no spread, no NaN from 0/0).

    Raises:
        ValueError: No values, NaN/inf values, or a confidence outside (0, 1).
    """
    arr = _as_values(values, "values")
    conf = _check_confidence(confidence)
    if _all_equal(arr):
        # The mean of identical floats can differ from them in the last bit; return them.
        m = float(arr[0])
        return (m, m, m) if arr.size > 1 else (m, math.nan, math.nan)
    mean = float(arr.mean())
    sem = float(arr.std(ddof=1)) / math.sqrt(arr.size)
    half = float(stats.t.ppf(0.5 + conf / 2.0, arr.size - 1)) * sem
    return mean, mean - half, mean + half


def _bootstrap_means(arr: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples of ``arr`` drawn with replacement (vectorised)."""
    rng = np.random.default_rng(seed)
    n = arr.size
    chunk = max(1, _MAX_CHUNK_ELEMENTS // n)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = arr[idx].mean(axis=1)
    return out


def _percentile_ci(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [100.0 * tail, 100.0 * (1.0 - tail)])
    return float(low), float(high)


def _check_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise ValueError(f"n_resamples: expected an integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: must be >= 1, got {n_resamples}")
    return int(n_resamples)


def bootstrap_interval(
    values: Any, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean (e.g. over cases).

    Cases are resampled with replacement (``numpy.random.default_rng(seed)``), the mean of
    each resample is taken, and the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` percentiles of those means (numpy's default linear
    interpolation), i.e. scipy's ``bootstrap(..., method="percentile")`` with another
    random stream.

    Args:
        values: 1-D sequence of finite per-case scores (drop NaN rows first).
        confidence: Confidence level in (0, 1).
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the random generator; the same seed gives the same interval.

    Returns:
        ``(mean, low, high)``; ``(v, v, v)`` for a single value or identical values.

    Raises:
        ValueError: No values, NaN/inf values, a bad confidence or ``n_resamples``.
    """
    arr = _as_values(values, "values")
    conf = _check_confidence(confidence)
    n_resamples = _check_resamples(n_resamples)
    if _all_equal(arr):
        m = float(arr[0])
        return m, m, m
    low, high = _percentile_ci(_bootstrap_means(arr, n_resamples, seed), conf)
    return float(arr.mean()), low, high


def paired_difference(
    a: Any,
    b: Any,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, float | int]:
    """Compare two methods scored on the same cases (same order): ``a - b``.

    The interval is :func:`bootstrap_interval` of the per-case differences (resampling
    cases keeps the pairing), so it equals ``bootstrap_interval(a - b, ...)`` exactly. The
    p-value is the two-sided Wilcoxon signed-rank test of the differences
    (``scipy.stats.wilcoxon(a - b)`` with its defaults: zero differences are dropped, exact
    distribution for small samples without ties, normal approximation otherwise).

    Degenerate cases are answered without calling scipy, so no warning or NaN leaks:
    all differences zero (including identical inputs) gives ``p_value = 1.0``; a single
    case gives ``p_value = 1.0`` (the smallest two-sided p-value the signed-rank test can
    reach with one non-zero difference is 1, so it can never reject). Should scipy still
    return NaN, ``p_value`` is 1.0 (no evidence of a difference).

    Args:
        a: Per-case scores of the first method (1-D, finite).
        b: Per-case scores of the second method, same cases in the same order.
        confidence: Confidence level of the interval, in (0, 1).
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the bootstrap's random generator.

    Returns:
        ``{"diff": mean(a - b), "ci_low", "ci_high", "p_value", "n": number of cases}``.

    Raises:
        ValueError: Lengths differ, no cases, NaN/inf values, bad confidence/resamples.
    """
    x = _as_values(a, "a")
    y = _as_values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b: lengths differ ({x.size} vs {y.size}); scores must be paired")
    d = x - y
    mean, low, high = bootstrap_interval(d, confidence, n_resamples, seed)
    if d.size < 2 or not d.any():
        p = 1.0
    else:
        with warnings.catch_warnings():
            # e.g. "exact p-value unavailable with ties": scipy then approximates, fine.
            warnings.simplefilter("ignore")
            p = float(stats.wilcoxon(d).pvalue)
        if math.isnan(p):
            p = 1.0
    return {"diff": mean, "ci_low": low, "ci_high": high, "p_value": p, "n": int(d.size)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given.

    Sorted ascending, the i-th smallest (0-based) of ``m`` p-values is multiplied by
    ``m - i``; the running maximum keeps the adjusted values monotone (step-down) and
    they are capped at 1. Reject a hypothesis when its adjusted p-value is <= alpha.

    Args:
        p_values: p-values in [0, 1].

    Returns:
        Adjusted p-values, same length and order; ``[]`` for no p-values.

    Raises:
        ValueError: A p-value is NaN or outside [0, 1].
    """
    p = np.asarray(list(p_values), dtype=np.float64)
    if p.size == 0:
        return []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p_values: every value must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


def significance(
    diff: float, low: float, high: float, p_adj: float, alpha: float = 0.05
) -> Literal["none", "unclear", "higher", "lower"]:
    """What one paired comparison (``a - b``) shows, decided by the Holm-adjusted p-value.

    ``"none"`` when ``p_adj >= alpha`` (or NaN); ``"unclear"`` when the Wilcoxon test rejects
    but the mean difference is 0 or its interval ``[low, high]`` (NaN: unknown) includes 0 (the
    test is about the typical difference, not the mean); else the mean's direction.
    """
    if math.isnan(p_adj) or p_adj >= alpha:
        return "none"
    if math.isnan(diff) or diff == 0 or low <= 0 <= high:
        return "unclear"
    return "higher" if diff > 0 else "lower"


def format_p(p: float) -> str:
    """``"p = 0.043"`` (two significant digits), ``"p < 0.001"`` or ``"p = n/a"`` for NaN."""
    if math.isnan(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def describe_difference(
    diff: float,
    ci: tuple[float, float],
    p_adj: float,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    digits: int = 2,
) -> str:
    """A plain-English phrase for one paired comparison (``a - b``) in the report.

    Examples: ``"not significant (+0.41, 95% CI -0.32 to 1.10; p = 0.43 after Holm)"``,
    ``"significantly lower, worse (-2.10, 95% CI -3.00 to -1.20; p = 0.002 after Holm)"``.

    Significance is decided by the (Holm-adjusted) Wilcoxon p-value; the direction is the
    sign of the mean difference. The Wilcoxon test is about the typical (pseudo-median)
    difference, not the mean, so when it is significant but the interval of the mean
    includes 0 the phrase says so instead of claiming a direction.

    Args:
        diff: Mean difference ``a - b``.
        ci: ``(low, high)`` confidence interval of the mean difference.
        p_adj: The p-value after Holm's adjustment.
        alpha: Significance level.
        higher_is_better: Whether a higher score is better (Dice: True, HD95: False); adds
            "better"/"worse" to a significant direction.
        confidence: The interval's confidence level (only for the label).
        digits: Decimals of the difference and the interval.

    Returns:
        The phrase.
    """
    low, high = ci
    numbers = (
        f"{diff:+.{digits}f}, {round(100 * confidence):d}% CI {low:.{digits}f} to "
        f"{high:.{digits}f}; {format_p(p_adj)} after Holm"
    )
    found = significance(diff, low, high, p_adj, alpha)
    if found == "none":
        return f"not significant ({numbers})"
    if found == "unclear":
        return f"significant by Wilcoxon, but the mean difference's CI includes 0 ({numbers})"
    verdict = "better" if (found == "higher") == higher_is_better else "worse"
    return f"significantly {found}, {verdict} ({numbers})"
