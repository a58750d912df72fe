"""The report's statistics against scipy / numpy and hand-computed numbers; the verdict of a
difference agrees with its drawn interval and its p-value on many random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from mtunet.report.choice import method_for
from mtunet.report.intervals import mean_interval
from mtunet.report.stats import (
    adjusted_confidence,
    bonferroni,
    case_interval,
    describe_difference,
    format_p,
    paired_difference,
    significance,
    t_interval,
)

# Fixed, skewed per-case scores.
CASES = np.random.default_rng(2024).lognormal(0.0, 0.9, size=30)


# --------------------------------------------------------------------------------------
# t_interval
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[0.81, 0.79, 0.84], [71.2, 69.5, 70.1, 72.3, 70.8], CASES])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(values: list[float], confidence: float) -> None:
    x = np.asarray(values, dtype=float)
    low, high = sst.t.interval(confidence, x.size - 1, loc=x.mean(), scale=sst.sem(x))
    mean, lo, hi = t_interval(x, confidence)
    assert mean == pytest.approx(x.mean(), rel=1e-14)
    assert (lo, hi) == pytest.approx((low, high), rel=1e-12)


def test_t_interval_degenerate() -> None:
    mean, lo, hi = t_interval([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)
    assert t_interval([0.1, 0.1, 0.1]) == (0.1, 0.1, 0.1)  # no NaN from 0/0
    with pytest.raises(ValueError, match="no values"):
        t_interval([])
    with pytest.raises(ValueError, match="NaN"):
        t_interval([0.5, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        t_interval([0.5, 0.6], confidence=95)


# --------------------------------------------------------------------------------------
# case_interval
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 4, 8, 12, 20, 30])
def test_case_interval_uses_the_method_chosen_for_n(n: int) -> None:
    x = CASES[:n]
    mean, lo, hi, method = case_interval(x, 0.95, n_resamples=500, seed=3)
    assert method == method_for("mean", n)
    assert mean == pytest.approx(x.mean(), rel=1e-14)
    assert (lo, hi) == pytest.approx(mean_interval(x, method, 0.95, 500, 3), rel=1e-12)
    if method == "t":
        assert (lo, hi) == pytest.approx(t_interval(x)[1:], rel=1e-12)
    assert lo < mean < hi


def test_case_interval_degenerate_and_bad_input() -> None:
    mean, lo, hi, method = case_interval([0.42])
    assert mean == 0.42 and math.isnan(lo) and math.isnan(hi) and method is None
    assert case_interval([0.1] * 7) == (0.1, 0.1, 0.1, method_for("mean", 7))
    with pytest.raises(ValueError, match="NaN"):
        case_interval([0.3, math.nan, 0.5])
    with pytest.raises(ValueError, match="no values"):
        case_interval(np.array([]))
    with pytest.raises(ValueError, match="confidence"):
        case_interval(CASES, confidence=1.0)


# --------------------------------------------------------------------------------------
# paired_difference
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.95, 0.975, 0.99])
def test_paired_difference_one_seed_is_scipys_paired_t(confidence: float) -> None:
    rng = np.random.default_rng(11)
    a = rng.uniform(0.6, 0.9, size=25)
    b = a - rng.normal(0.02, 0.03, size=25)
    out = paired_difference(a, b, confidence)
    ref = sst.ttest_rel(a, b)
    ci = ref.confidence_interval(confidence)
    assert out["n"] == 25 and out["n_seeds"] == [1, 1] and out["method"] == "t"
    assert out["sources"] == ["cases"] and out["df"] == 24 and out["confidence"] == confidence
    assert out["diff"] == pytest.approx(np.mean(a - b), rel=1e-13)
    assert out["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    # Swapping the methods mirrors the difference and keeps the p-value.
    swapped = paired_difference(b, a, confidence)
    assert swapped["diff"] == pytest.approx(-out["diff"])
    assert (swapped["ci_low"], swapped["ci_high"]) == pytest.approx(
        (-out["ci_high"], -out["ci_low"])
    )
    assert swapped["p_value"] == pytest.approx(out["p_value"])


def _welch_by_hand(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, ...]:
    """The seeds-and-cases t interval written out with plain loops."""
    ka, n = a.shape
    kb = b.shape[0]
    d = [
        sum(a[s, i] for s in range(ka)) / ka - sum(b[r, i] for r in range(kb)) / kb
        for i in range(n)
    ]
    diff = sum(d) / n
    parts = [(sum((v - diff) ** 2 for v in d) / (n - 1) / n, n - 1)]
    for t, k in ((a, ka), (b, kb)):
        if k > 1:
            means = [sum(t[s]) / n for s in range(k)]
            mu = sum(means) / k
            parts.append((sum((v - mu) ** 2 for v in means) / (k - 1) / k, k - 1))
    var = sum(p for p, _ in parts)
    df = var**2 / sum(p**2 / f for p, f in parts)
    q = sst.t.ppf((1 + confidence) / 2, df)
    se = math.sqrt(var)
    return diff, diff - q * se, diff + q * se, 2 * sst.t.sf(abs(diff) / se, df), df


def test_paired_difference_several_seeds_adds_the_seed_variation() -> None:
    rng = np.random.default_rng(5)
    cases = rng.uniform(0.6, 0.9, size=12)
    # Each seed shifts all cases of its network: the seeds' common variation.
    a = cases + 0.03 + rng.normal(0, 0.02, size=(3, 1)) + rng.normal(0, 0.005, size=(3, 12))
    b = cases + rng.normal(0, 0.02, size=(3, 1)) + rng.normal(0, 0.005, size=(3, 12))
    out = paired_difference(a, b, 0.95)
    diff, lo, hi, p, df = _welch_by_hand(a, b, 0.95)
    assert out["method"] == "t_seeds_cases" and out["n_seeds"] == [3, 3]
    assert out["sources"] == ["seeds", "cases"]
    assert (out["diff"], out["ci_low"], out["ci_high"]) == pytest.approx((diff, lo, hi), rel=1e-12)
    assert out["p_value"] == pytest.approx(p, rel=1e-9) and out["df"] == pytest.approx(df)
    # The cases-only interval of the seed-averaged differences is much narrower: it misses
    # the seeds' shifts.
    cases_only = paired_difference(a.mean(axis=0), b.mean(axis=0), 0.95)
    assert cases_only["diff"] == pytest.approx(out["diff"])
    assert out["ci_high"] - out["ci_low"] > 2 * (cases_only["ci_high"] - cases_only["ci_low"])
    # One seed on one side: only the other side's seed term.
    one = paired_difference(a, b[:1], 0.95)
    assert one["n_seeds"] == [3, 1]
    assert one["ci_low"] == pytest.approx(_welch_by_hand(a, b[:1], 0.95)[1], rel=1e-12)


def test_paired_difference_degenerate_cases() -> None:
    same = paired_difference([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])
    assert (same["diff"], same["ci_low"], same["ci_high"], same["p_value"]) == (0, 0, 0, 1)
    shift = paired_difference([1.0, 0.75, 0.5], [0.5, 0.25, 0.0])  # every case +0.5 exactly
    assert shift["ci_low"] == shift["ci_high"] == 0.5 and shift["p_value"] == 0
    one = paired_difference([0.9], [0.7])
    assert one["n"] == 1 and one["diff"] == pytest.approx(0.2)
    assert math.isnan(one["ci_low"]) and math.isnan(one["p_value"])
    with pytest.raises(ValueError, match="case counts differ"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="shape"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([0.1, math.nan], [0.1, 0.2])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([0.1, 0.2], [0.2, 0.2], confidence=0)


# --------------------------------------------------------------------------------------
# Bonferroni
# --------------------------------------------------------------------------------------


def test_bonferroni_and_adjusted_confidence() -> None:
    assert bonferroni([0.01, 0.04, 0.3]) == pytest.approx([0.03, 0.12, 0.9])
    assert bonferroni([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert bonferroni([0.04]) == [0.04] and bonferroni([]) == []
    out = bonferroni([0.01, math.nan])  # no test still counts in m
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1])
    with pytest.raises(ValueError, match="p_values"):
        bonferroni([0.1, 1.5])
    assert adjusted_confidence(0.95, 1) == pytest.approx(0.95)
    assert adjusted_confidence(0.95, 2) == pytest.approx(0.975)
    assert adjusted_confidence(0.95, 5) == pytest.approx(0.99)
    with pytest.raises(ValueError, match="m"):
        adjusted_confidence(0.95, 0)


# --------------------------------------------------------------------------------------
# significance, describe_difference: the verdict is the interval's
# --------------------------------------------------------------------------------------


def test_significance_is_decided_by_the_interval() -> None:
    assert significance(2.0, 1.0, 3.0) == "higher"
    assert significance(-2.0, -3.0, -1.0) == "lower"
    assert significance(0.5, -1.0, 2.0) == "none"
    assert significance(0.0, 0.0, 0.0) == "none"  # 0 on the bound is inside
    assert significance(math.nan, 1.0, 3.0) == "none"
    assert significance(2.0, math.nan, math.nan) == "none"
    # A p-value of the same test agrees; one that does not is reported, not followed.
    assert significance(2.0, 1.0, 3.0, 0.01) == "higher"
    assert significance(0.5, -1.0, 2.0, 0.3) == "none"
    assert significance(2.0, 1.0, 3.0, 0.2) == "unclear"
    assert significance(0.5, -1.0, 2.0, 0.01) == "unclear"


@pytest.mark.parametrize("seeds", [1, 3])
def test_verdict_interval_and_p_agree_on_random_inputs(seeds: int) -> None:
    """Over many random families: Bonferroni p < alpha exactly when the interval drawn at the
    adjusted level excludes 0, so the verdict never contradicts the figure."""
    rng = np.random.default_rng(seeds)
    alpha, checked, significant = 0.05, 0, 0
    for _ in range(300):
        m = int(rng.integers(1, 6))
        n = int(rng.integers(3, 30))
        level = adjusted_confidence(1 - alpha, m)
        rows = []
        for _ in range(m):
            shift = rng.normal(0, 0.05)
            ref = rng.beta(8, 2, size=(seeds, n))
            other = ref + shift + rng.normal(0, rng.uniform(0.01, 0.1), size=(seeds, n))
            rows.append(paired_difference(other, ref, level))
        for row, p_adj in zip(rows, bonferroni([r["p_value"] for r in rows]), strict=True):
            excludes = row["ci_low"] > 0 or row["ci_high"] < 0
            assert (p_adj < alpha) == excludes
            assert (row["p_value"] < alpha / m) == excludes
            verdict = significance(row["diff"], row["ci_low"], row["ci_high"], p_adj, alpha)
            assert verdict != "unclear"
            assert (verdict in ("higher", "lower")) == excludes
            if verdict != "none":
                assert (verdict == "higher") == (row["diff"] > 0)
            checked += 1
            significant += excludes
    assert checked > 500 and 0.1 < significant / checked < 0.9  # both verdicts exercised


def test_describe_difference() -> None:
    row = {
        "diff": -2.1,
        "ci_low": -3.0,
        "ci_high": -1.2,
        "confidence": 0.975,
        "m": 2,
        "p_adjusted": 0.004,
        "method": "t",
        "n": 12,
    }
    assert describe_difference(row) == (
        "significantly lower, worse (-2.10, 97.5% CI -3.00 to -1.20, t over 12 cases, "
        "Bonferroni for 2 comparisons; p = 0.004 adjusted)"
    )
    assert describe_difference(row, higher_is_better=False).startswith(
        "significantly lower, better"
    )
    one = {
        **row,
        "diff": 0.41,
        "ci_low": -0.32,
        "ci_high": 1.1,
        "confidence": 0.95,
        "m": 1,
        "p_adjusted": 0.43,
    }
    assert describe_difference(one) == (
        "not significant (+0.41, 95% CI -0.32 to 1.10, t over 12 cases; p = 0.43)"
    )
    cov = {"coverage": {"tight": 0.951, "skewed": 0.87}, "below_target": True}
    text = describe_difference({**row, "coverage": cov})
    assert text.endswith("; simulated coverage 95% tight, 87% skewed, below target)")
    assert describe_difference({**row, "p_adjusted": 0.2}).startswith("unclear")
    assert format_p(0.0432) == "p = 0.043" and format_p(math.nan) == "p = n/a"
    assert format_p(0.0004) == "p < 0.001"
