"""Small, pure statistics for comparing runs: intervals, paired differences, their verdicts.

Two levels of variation appear in the study and each has its own interval of a mean:

- across training seeds (a handful of per-seed means): :func:`t_interval`, Student t;
- across test cases (one score per case): :func:`case_interval`, the method
  :mod:`mtunet.report.choice` gives for that number of cases (chosen by a coverage
  simulation, ``benchmarks/interval_coverage.py``).

A variant and the reference scored on the same cases are compared by
:func:`paired_difference`: the mean difference, its t interval (over cases; with several
seeds, over seeds and cases: :mod:`mtunet.report.seeds_cases`) and the p-value of the test
that this interval inverts. A family of m comparisons is corrected by Bonferroni
(:func:`bonferroni`, :func:`adjusted_confidence`): each interval is drawn at level
``1 - alpha / m`` and a difference is significant exactly when that interval excludes 0
(:func:`significance`), so the verdict and the drawn interval agree by construction.

Only numpy and scipy are used; every function is deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats

from mtunet.report.choice import method_for
from mtunet.report.intervals import mean_interval
from mtunet.report.seeds_cases import t_seeds_cases

Verdict = Literal["none", "unclear", "higher", "lower"]


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


def case_interval(
    values: Any, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float, str | None]:
    """Mean and interval of the mean over cases, by the method chosen for that many cases.

    Args:
        values: 1-D sequence of finite per-case scores (drop NaN rows first).
        confidence: Confidence level in (0, 1).
        n_resamples: Bootstrap resamples, when the chosen method is a bootstrap.
        seed: Seed of the resampling.

    Returns:
        ``(mean, low, high, method)`` with ``method`` from
        :func:`mtunet.report.choice.method_for` (``"mean"``); one case: ``(v, nan, nan,
        None)``; identical values: ``(v, v, v, method)``.

    Raises:
        ValueError: No values, NaN/inf values, or a confidence outside (0, 1).
    """
    arr = _as_values(values, "values")
    conf = _check_confidence(confidence)
    if arr.size < 2:
        return float(arr[0]), math.nan, math.nan, None
    method = method_for("mean", int(arr.size))
    if _all_equal(arr):
        m = float(arr[0])
        return m, m, m, method
    low, high = mean_interval(arr, method, conf, n_resamples, seed)
    return float(arr.mean()), low, high, method


def _as_table(values: Any, name: str) -> np.ndarray:
    """(seeds, cases) float64 table (1-D: one seed) without NaN/inf; ValueError otherwise."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"{name}: expected per-case scores (cases,) or (seeds, cases), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: NaN or infinite scores; keep the cases every seed scored")
    return arr


def paired_difference(a: Any, b: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Compare two methods scored on the same cases (same order): ``a - b``.

    With one seed per method (1-D inputs) this is the paired t interval of the per-case
    differences and the paired t-test (``scipy.stats.ttest_rel``). With several seeds
    ((seeds, cases) tables) the interval carries the seeds' variation as well as the cases'
    (:func:`mtunet.report.seeds_cases.t_seeds_cases`) and the p-value is that interval's own
    test. Either way ``p_value < 1 - confidence`` exactly when the interval excludes 0.

    Args:
        a: Scores of the first method: (cases,) or (seeds, cases).
        b: Scores of the second method on the same cases: (cases,) or (seeds, cases).
        confidence: Confidence level of the interval, in (0, 1).

    Returns:
        ``{"diff": mean over seeds and cases of a minus that of b, "ci_low", "ci_high",
        "p_value", "n": cases, "n_seeds": [seeds of a, seeds of b], "method": "t" or
        "t_seeds_cases", "sources": ["cases"] or ["seeds", "cases"], "se", "df",
        "confidence"}``. One case: interval and p-value NaN. No spread at all: the interval
        is the difference itself, p is 1 for a zero difference, else 0.

    Raises:
        ValueError: The case counts differ, no cases, NaN/inf scores, a bad confidence, or a
            method table that names a method this function does not compute.
    """
    x = _as_table(a, "a")
    y = _as_table(b, "b")
    conf = _check_confidence(confidence)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"a and b: case counts differ ({x.shape[1]} vs {y.shape[1]}); scores must be paired"
        )
    n = x.shape[1]
    several = x.shape[0] > 1 or y.shape[0] > 1
    method = "t_seeds_cases" if several else "t"
    if n >= 2:
        table = method_for("seeds" if several else "difference", n)
        if table != method:
            raise ValueError(
                f"the method table names {table!r} for a difference of {n} cases; "
                f"paired_difference computes {method!r} (a p-value needs the test its "
                "interval inverts)"
            )
    res = {k: float(v[0]) for k, v in t_seeds_cases(x, y, conf).items()}
    return {
        "diff": res["diff"],
        "ci_low": res["low"],
        "ci_high": res["high"],
        "p_value": res["p_value"],
        "se": res["se"],
        "df": res["df"],
        "n": int(n),
        "n_seeds": [int(x.shape[0]), int(y.shape[0])],
        "method": method,
        "sources": ["seeds", "cases"] if several else ["cases"],
        "confidence": conf,
    }


def adjusted_confidence(confidence: float, m: int) -> float:
    """Bonferroni: the level of each of ``m`` intervals whose family holds ``confidence``.

    ``1 - (1 - confidence) / m``: all m intervals hold their true differences together with
    probability at least ``confidence``.
    """
    conf = _check_confidence(confidence)
    if m < 1:
        raise ValueError(f"m: a family has at least one comparison, got {m}")
    return 1.0 - (1.0 - conf) / m


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values, in the order given: ``min(1, m * p)``.

    Reject a hypothesis when its adjusted p-value is below alpha; that is exactly when its
    interval at :func:`adjusted_confidence` excludes 0. NaN (no test: fewer than 2 cases)
    stays NaN and still counts in m.

    Raises:
        ValueError: A p-value outside [0, 1].
    """
    p = np.asarray(list(p_values), dtype=np.float64)
    if p.size == 0:
        return []
    bad = ~np.isnan(p) & ((p < 0) | (p > 1))
    if bad.any():
        raise ValueError(f"p_values: every value must lie in [0, 1], got {p.tolist()}")
    return [float(v) for v in np.minimum(1.0, p * p.size)]


def significance(
    diff: float, low: float, high: float, p_adj: float = math.nan, alpha: float = 0.05
) -> Verdict:
    """What one paired comparison (``a - b``) shows, decided by its drawn interval.

    ``[low, high]`` is the interval of the mean difference at the family-adjusted level
    (:func:`adjusted_confidence`): ``"higher"`` when it lies above 0, ``"lower"`` below 0,
    ``"none"`` when it holds 0 or a bound or ``diff`` is unknown (NaN). ``p_adj``, when given,
    must be the adjusted p-value of the test that interval inverts; if it disagrees with the
    interval (``p_adj < alpha`` while 0 is inside, or the reverse) the answer is
    ``"unclear"``: the p-value and the interval do not come from the same test and level.
    """
    if any(math.isnan(v) for v in (diff, low, high)):
        return "none"
    excludes = low > 0 or high < 0
    if not math.isnan(p_adj) and (p_adj < alpha) != excludes:
        return "unclear"
    if not excludes:
        return "none"
    return "higher" if low > 0 else "lower"


def format_p(p: float) -> str:
    """``"p = 0.043"`` (two significant digits), ``"p < 0.001"`` or ``"p = n/a"`` for NaN."""
    if math.isnan(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def _level(confidence: float) -> str:
    return f"{100 * confidence:.3g}%"


def _num(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def describe_difference(
    row: Mapping[str, Any], higher_is_better: bool = True, alpha: float = 0.05, digits: int = 2
) -> str:
    """A plain-English phrase for one comparison row of ``comparison.json`` (``a - b``).

    Example: ``"significantly lower, worse (-2.10, 97.5% CI -3.00 to -1.20, t over 12
    cases, Bonferroni for 2 comparisons; p = 0.004 adjusted; simulated coverage 95%
    tight, 97% skewed)"``. The verdict is :func:`significance` of the row's interval.

    Args:
        row: ``diff``, ``ci_low``, ``ci_high``, ``confidence`` (the interval's level),
            ``p_adjusted``, ``m``, ``method``, ``n``, and optionally ``coverage`` (the record
            of :func:`mtunet.report.choice.coverage_at`).
        higher_is_better: Whether a higher score is better (Dice: True, HD95: False); adds
            "better"/"worse" to a significant direction.
        alpha: The family's significance level.
        digits: Decimals of the difference and the interval.
    """
    diff, low, high = _num(row, "diff"), _num(row, "ci_low"), _num(row, "ci_high")
    p_adj = _num(row, "p_adjusted")
    m = int(row.get("m") or 1)
    parts = [f"{diff:+.{digits}f}"]
    if not (math.isnan(low) or math.isnan(high)):
        ci = f"{_level(_num(row, 'confidence'))} CI {low:.{digits}f} to {high:.{digits}f}"
        ci += f", {row.get('method')} over {row.get('n')} cases"
        if m > 1:
            ci += f", Bonferroni for {m} comparisons"
        parts.append(ci)
    text = ", ".join(parts) + f"; {format_p(p_adj)}" + (" adjusted" if m > 1 else "")
    cov = (row.get("coverage") or {}).get("coverage")
    if cov:
        text += "; simulated coverage " + ", ".join(
            f"{100 * v:.0f}% {family}" for family, v in cov.items()
        )
        if (row.get("coverage") or {}).get("below_target"):
            text += ", below target"
    found = significance(diff, low, high, p_adj, alpha)
    if found == "none":
        return f"not significant ({text})"
    if found == "unclear":
        return f"unclear: the p-value and the interval disagree ({text})"
    verdict = "better" if (found == "higher") == higher_is_better else "worse"
    return f"significantly {found}, {verdict} ({text})"
