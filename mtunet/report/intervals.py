"""Confidence intervals of a mean, vectorised over many samples at once.

The same functions compute the one interval the comparison reports (a single sample) and the
thousands of intervals of a coverage simulation (:mod:`mtunet.report.coverage`), so the
simulated coverage is the coverage of exactly the code that computes the reported interval.

Methods (``data`` of shape (S, n): S samples of n values, one interval per sample):

- ``"t"``: Student t, ``mean ± t_{n-1} · s / sqrt(n)`` (``scipy.stats.t``);
- ``"percentile"``, ``"basic"``, ``"bca"``: the bootstrap intervals of
  ``scipy.stats.bootstrap`` (percentile, basic/reverse percentile, bias-corrected and
  accelerated), one bootstrap distribution shared by the three;
- ``"bootstrap_t"``: the studentized bootstrap (Efron and Tibshirani 1993, ch. 12.5), which
  scipy does not implement: the quantiles of ``(mean* - mean) / se*`` over resamples,
  turned around the sample's mean and standard error.

Bootstrap resamples draw the same case indices for every sample of a batch (as scipy does);
samples are independent, so each one's interval is an ordinary bootstrap interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

METHODS = ("t", "percentile", "basic", "bca", "bootstrap_t")
SCIPY_BOOTSTRAP = {"percentile": "percentile", "basic": "basic", "bca": "BCa"}
# Resampled values held at once (float64: 32 MiB): bounds memory for many samples.
_MAX_ELEMENTS = 1 << 22

Interval = tuple[np.ndarray, np.ndarray]


def check_method(method: str, where: str = "method") -> str:
    """``method`` if it is one of :data:`METHODS`; ValueError naming ``where`` otherwise."""
    if method not in METHODS:
        raise ValueError(f"{where}: unknown interval method {method!r}; use one of {METHODS}")
    return method


def _as_samples(data: np.ndarray) -> np.ndarray:
    """(S, n) float64 without NaN/inf (a 1-D input is one sample); ValueError otherwise."""
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"data: expected shape (samples, n) with n >= 1, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("data: NaN or infinite values; drop them before computing intervals")
    return arr


def _means(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row means, and which rows hold one value repeated (their mean is set to that value:
    the mean of identical floats can differ from them in the last bit)."""
    flat = np.all(arr == arr[:, :1], axis=1)
    mean = arr.mean(axis=1)
    mean[flat] = arr[flat, 0]
    return mean, flat


def _batch(shape: tuple[int, int]) -> int:
    """Resamples per vectorised step so that ``batch * S * n`` stays under the memory cap."""
    return max(1, _MAX_ELEMENTS // (shape[0] * shape[1]))


def t_bounds(data: np.ndarray, confidence: float) -> Interval:
    """Student-t interval of each sample's mean.

    Args:
        data: (S, n) values (n >= 2 for a finite interval).
        confidence: Level in (0, 1).

    Returns:
        ``(low, high)``, each (S,); NaN for n < 2.
    """
    arr = _as_samples(data)
    n = arr.shape[1]
    if n < 2:
        nan = np.full(arr.shape[0], np.nan)
        return nan, nan.copy()
    mean, flat = _means(arr)
    half = stats.t.ppf(0.5 + confidence / 2.0, n - 1) * arr.std(axis=1, ddof=1) / math.sqrt(n)
    half[flat] = 0.0
    return mean - half, mean + half


def order_statistic(q: float, size: int) -> int:
    """0-based index of the ``q`` quantile among ``size`` sorted values: the smallest value
    whose empirical CDF reaches ``q`` (the ``ceil(q * size)``-th; ``q * size`` within 1e-9 of
    an integer counts as that integer, so 0.025 * 2000 gives the 50th, not the 51st)."""
    return min(size - 1, max(0, math.ceil(q * size - 1e-9) - 1))


def bootstrap_t_bounds(
    data: np.ndarray, confidence: float, n_resamples: int, rng: np.random.Generator
) -> Interval:
    """Studentized-bootstrap interval of each sample's mean.

    For resample ``b`` of sample ``s`` (cases drawn with replacement; one index draw of
    shape (batch, n) per step, shared by all samples): ``t*_b = (mean*_b - mean) / se*_b``
    with ``se = std(ddof=1) / sqrt(n)``. The interval is ``[mean - q_{1-a/2} · se,
    mean - q_{a/2} · se]`` with ``q`` order statistics of ``t*`` (:func:`order_statistic`;
    no interpolation, so the infinite ``t*`` of resamples with no spread stay usable: such a
    resample gives ``±inf``, or 0 when its mean equals the sample's, and a quantile that falls
    among them leaves the interval unbounded on that side).

    Args:
        data: (S, n) values.
        confidence: Level in (0, 1).
        n_resamples: Bootstrap resamples per sample.
        rng: Generator of the resampled indices.

    Returns:
        ``(low, high)``, each (S,); NaN for n < 2, ``(m, m)`` for a sample of equal values.
    """
    arr = _as_samples(data)
    size, n = arr.shape
    if n < 2:
        nan = np.full(size, np.nan)
        return nan, nan.copy()
    mean, flat = _means(arr)
    se = arr.std(axis=1, ddof=1) / math.sqrt(n)
    t_star = np.empty((size, n_resamples))
    step = _batch(arr.shape)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        resampled = arr[:, rng.integers(0, n, size=(stop - start, n))]  # (S, b, n)
        m_b = resampled.mean(axis=2)
        se_b = resampled.std(axis=2, ddof=1) / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_b = (m_b - mean[:, None]) / se_b
        t_star[:, start:stop] = np.where(np.isnan(t_b), 0.0, t_b)
    t_star.sort(axis=1)
    tail = (1.0 - confidence) / 2.0
    q_low = t_star[:, order_statistic(tail, n_resamples)]
    q_high = t_star[:, order_statistic(1.0 - tail, n_resamples)]
    with np.errstate(invalid="ignore"):
        low, high = mean - q_high * se, mean - q_low * se
    low[flat], high[flat] = mean[flat], mean[flat]  # no spread (inf * 0 above): the value
    return low, high


def scipy_bootstrap_bounds(
    data: np.ndarray,
    methods: Sequence[str],
    confidence: float,
    n_resamples: int,
    rng: np.random.Generator,
) -> dict[str, Interval]:
    """``scipy.stats.bootstrap`` intervals of each sample's mean, for several methods.

    One bootstrap distribution (``n_resamples`` resamples) is drawn, then reused for every
    method through scipy's ``bootstrap_result`` argument.

    Args:
        data: (S, n) values.
        methods: Some of ``"percentile"``, ``"basic"``, ``"bca"``.
        confidence: Level in (0, 1).
        n_resamples: Bootstrap resamples.
        rng: Generator passed to scipy.

    Returns:
        Method -> ``(low, high)``, each (S,). A sample of equal values gets ``(m, m)``
        (scipy's BCa would give NaN); n = 1 gives NaN.
    """
    arr = _as_samples(data)
    size, n = arr.shape
    if n < 2:
        return {m: (np.full(size, np.nan), np.full(size, np.nan)) for m in methods}
    flat = np.all(arr == arr[:, :1], axis=1)
    out: dict[str, Interval] = {}
    result = None
    with warnings.catch_warnings():
        # BCa on a sample of equal values: DegenerateDataWarning and NaN, replaced below.
        warnings.simplefilter("ignore")
        for method in methods:
            result = stats.bootstrap(
                (arr,),
                np.mean,
                n_resamples=0 if result is not None else n_resamples,
                batch=_batch(arr.shape),
                vectorized=True,
                axis=-1,
                confidence_level=confidence,
                method=SCIPY_BOOTSTRAP[method],
                bootstrap_result=result,
                rng=rng,
            )
            low = np.array(result.confidence_interval.low, dtype=np.float64).reshape(size)
            high = np.array(result.confidence_interval.high, dtype=np.float64).reshape(size)
            low[flat], high[flat] = arr[flat, 0], arr[flat, 0]
            out[method] = (low, high)
    return out


def mean_bounds(
    data: np.ndarray,
    methods: Sequence[str],
    confidence: float,
    n_resamples: int,
    rng: np.random.Generator | int,
) -> dict[str, Interval]:
    """Intervals of each sample's mean by each of ``methods``.

    Args:
        data: (S, n) values, or (n,) for one sample.
        methods: Names from :data:`METHODS`.
        confidence: Level in (0, 1).
        n_resamples: Bootstrap resamples (bootstrap methods).
        rng: Generator (or seed) of the resampling; the scipy methods draw first, then the
            bootstrap-t, so a method's interval depends on which others are asked for.

    Returns:
        Method -> ``(low, high)``, each (S,).

    Raises:
        ValueError: An unknown method, a level outside (0, 1), NaN/inf data, or
            ``n_resamples`` < 1 when a bootstrap method is asked for.
    """
    for m in methods:
        check_method(m)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must lie strictly between 0 and 1, got {confidence!r}")
    if any(m != "t" for m in methods) and n_resamples < 1:
        raise ValueError(f"n_resamples: must be >= 1, got {n_resamples}")
    gen = np.random.default_rng(rng)
    out: dict[str, Interval] = {}
    if "t" in methods:
        out["t"] = t_bounds(data, confidence)
    boot = [m for m in methods if m in SCIPY_BOOTSTRAP]
    if boot:
        out.update(scipy_bootstrap_bounds(data, boot, confidence, n_resamples, gen))
    if "bootstrap_t" in methods:
        out["bootstrap_t"] = bootstrap_t_bounds(data, confidence, n_resamples, gen)
    return {m: out[m] for m in methods}


def mean_interval(
    values: np.ndarray, method: str, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float]:
    """One sample's interval of the mean by ``method`` (see :func:`mean_bounds`).

    Args:
        values: (n,) finite values.
        method: One of :data:`METHODS`.
        confidence: Level in (0, 1).
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        ``(low, high)``; NaN for a single value.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values: expected a 1-D sequence, got shape {arr.shape}")
    low, high = mean_bounds(arr, [method], confidence, n_resamples, seed)[method]
    return float(low[0]), float(high[0])
