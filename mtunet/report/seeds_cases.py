"""Intervals of a mean paired difference that carry two sources of variation: seeds and cases.

Each model is trained with K seeds and every seed's network is scored on the same n test
cases, so a model's scores form a (K, n) table in which seeds and cases are *crossed* (not
nested: the cases are the same in every seed). The quantity of interest is the mean over
seeds and cases of the variant minus that of the reference,
``D = mean_i (mean_s x[s, i] - mean_r y[r, i])``. It moves when the cases are drawn again
and when the networks are trained again; an interval over cases alone (seed-averaged
differences) misses the second source, the seeds' common shift of all cases.

Methods (each vectorised over S simulated studies, x of shape (S, Kx, n), y (S, Ky, n)):

- ``"t_seeds_cases"``: a t interval whose variance adds the two sources,
  ``v = s²(d̄) / n + s²(m_x) / Kx + s²(m_y) / Ky`` (d̄: the per-case seed-averaged
  differences; m_x, m_y: each model's per-seed means over the same cases), with the
  Welch–Satterthwaite degrees of freedom. A model with one seed contributes no seed term
  (its seed variation cannot be estimated), and with one seed for both models the interval
  is exactly the paired t interval (``scipy.stats.ttest_rel``). The per-seed means also hold
  the seed-by-case noise already in ``s²(d̄)``, so ``v`` counts that part twice: slightly
  conservative. Its own test (``D / sqrt(v)`` against t) gives the p-value.
- ``"two_level_bootstrap"``: a crossed two-level percentile bootstrap: each resample draws
  Kx variant seeds, Ky reference seeds (independently: equal seed numbers of two
  architectures are not paired runs) and n cases (one draw shared by every seed and both
  models, which keeps the pairing on cases), then takes ``D`` of the resampled tables.
- ``"t_cases"``: the paired t interval of the seed-averaged differences, ignoring seeds (kept
  to show in the benchmark what leaving the seeds out costs).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from mtunet.report.intervals import t_bounds

SEED_METHODS = ("t_seeds_cases", "two_level_bootstrap", "t_cases")
_MAX_ELEMENTS = 1 << 22


def _tables(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, Kx, n) and (S, Ky, n) float64 (a (K, n) input is one study); ValueError if bad."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a[None] if a.ndim == 2 else a
    b = b[None] if b.ndim == 2 else b
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(
            f"x and y: expected (seeds, cases) tables on the same cases, got {np.shape(x)} "
            f"and {np.shape(y)}"
        )
    if min(a.shape[1], b.shape[1], a.shape[2]) < 1:
        raise ValueError(f"x and y: need at least one seed and one case, got {a.shape}, {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("x and y: NaN or infinite scores; keep the cases every seed scored")
    return a, b


def t_seeds_cases(x: np.ndarray, y: np.ndarray, confidence: float) -> dict[str, np.ndarray]:
    """The seeds-and-cases t interval of ``D`` and its test (see the module docstring).

    Args:
        x: Variant scores, (S, Kx, n) or (Kx, n).
        y: Reference scores on the same cases, (S, Ky, n) or (Ky, n).
        confidence: Level in (0, 1).

    Returns:
        ``{"diff", "low", "high", "p_value", "se", "df"}``, each (S,). With one case the
        interval and p-value are NaN; with no spread at all the interval is ``(D, D)`` and
        p is 1 when D = 0, else 0.
    """
    a, b = _tables(x, y)
    n = a.shape[2]
    d_bar = a.mean(axis=1) - b.mean(axis=1)  # (S, n): seed-averaged per-case differences
    diff = d_bar.mean(axis=1)
    parts, dfs = [], []
    if n >= 2:
        parts.append(d_bar.var(axis=1, ddof=1) / n)
        dfs.append(n - 1)
    for table in (a, b):
        k = table.shape[1]
        if k >= 2:
            parts.append(table.mean(axis=2).var(axis=1, ddof=1) / k)
            dfs.append(k - 1)
    size = a.shape[0]
    if n < 2:
        nan = np.full(size, np.nan)
        return {"diff": diff, "low": nan, "high": nan, "p_value": nan, "se": nan, "df": nan}
    var = np.sum(parts, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / np.sum([p**2 / f for p, f in zip(parts, dfs, strict=True)], axis=0)
        se = np.sqrt(var)
        t_stat = diff / se
    flat = var == 0
    df = np.where(flat, float(n - 1), df)
    half = stats.t.ppf(0.5 + confidence / 2.0, df) * se
    p = 2.0 * stats.t.sf(np.abs(t_stat), df)
    p = np.where(flat, np.where(diff == 0, 1.0, 0.0), p)
    return {
        "diff": diff,
        "low": np.where(flat, diff, diff - half),
        "high": np.where(flat, diff, diff + half),
        "p_value": p,
        "se": se,
        "df": df,
    }


def two_level_bootstrap(
    x: np.ndarray,
    y: np.ndarray,
    confidence: float,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Crossed two-level percentile bootstrap of ``D`` (see the module docstring).

    One draw of (variant seeds, reference seeds, cases) per resample is shared by all S
    studies of a batch; the studies are independent, so each interval is an ordinary one.

    Args:
        x: Variant scores, (S, Kx, n).
        y: Reference scores, (S, Ky, n).
        confidence: Level in (0, 1).
        n_resamples: Resamples.
        rng: Generator of the resampled seeds and cases.

    Returns:
        ``(low, high)``, each (S,): the (1 - c) / 2 and (1 + c) / 2 quantiles (numpy's
        linear interpolation) of the resampled ``D``.
    """
    a, b = _tables(x, y)
    size, kx, n = a.shape
    ky = b.shape[1]
    boot = np.empty((size, n_resamples))
    step = max(1, _MAX_ELEMENTS // (size * n * max(kx, ky)))
    for start in range(0, n_resamples, step):
        m = min(step, n_resamples - start)
        wx = _seed_weights(rng.integers(0, kx, size=(m, kx)), kx)  # (m, Kx)
        wy = _seed_weights(rng.integers(0, ky, size=(m, ky)), ky)
        cases = rng.integers(0, n, size=(m, n))
        d = np.matmul(wx, a) - np.matmul(wy, b)  # (S, m, n): resampled seed means per case
        boot[:, start : start + m] = np.take_along_axis(d, cases[None], axis=2).mean(axis=2)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail], axis=1)
    return low, high


def _seed_weights(draws: np.ndarray, k: int) -> np.ndarray:
    """(m, k) seed indices -> (m, k) weights: how often each seed was drawn, over k."""
    return (draws[:, :, None] == np.arange(k)).sum(axis=1) / k


def seed_bounds(
    x: np.ndarray,
    y: np.ndarray,
    method: str,
    confidence: float,
    n_resamples: int = 2000,
    rng: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``D`` by one of :data:`SEED_METHODS`, each bound (S,).

    Raises:
        ValueError: An unknown method, a level outside (0, 1), or bad tables.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must lie strictly between 0 and 1, got {confidence!r}")
    if method == "t_seeds_cases":
        res = t_seeds_cases(x, y, confidence)
        return res["low"], res["high"]
    if method == "two_level_bootstrap":
        return two_level_bootstrap(x, y, confidence, n_resamples, np.random.default_rng(rng))
    if method == "t_cases":
        a, b = _tables(x, y)
        return t_bounds(a.mean(axis=1) - b.mean(axis=1), confidence)
    raise ValueError(
        f"method: unknown seeds-and-cases method {method!r}; use one of {SEED_METHODS}"
    )
