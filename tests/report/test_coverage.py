"""The coverage simulation: its populations have the means they claim, and it measures what is
known about the methods (the t interval's nominal coverage on normal-like data, the
percentile bootstrap's shortfall at small n, the cost of leaving seeds out)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mtunet.report.coverage import (
    DIFFERENCE_SCENARIOS,
    MEAN_SCENARIOS,
    SKEWED,
    TARGETS,
    BetaMixture,
    Scenario,
    SeedNoise,
    scenarios,
    simulate,
    simulate_seeds,
)


def test_beta_mixture_mean_and_distribution() -> None:
    assert BetaMixture(((1.0, 17.0, 3.0),)).mean == pytest.approx(0.85)
    assert SKEWED.mean == pytest.approx(0.1 * 0.1 + 0.9 * 0.8)
    u = np.random.default_rng(3).random(200_000)
    x = SKEWED.from_uniform(u)
    assert x.mean() == pytest.approx(SKEWED.mean, abs=0.002)
    # The lowest 10 % of u are the failures, Beta(2, 18); the rest is Beta(16, 4).
    assert stats.kstest(x[u < 0.1], stats.beta(2, 18).cdf).pvalue > 0.001
    assert stats.kstest(x[u >= 0.1], stats.beta(16, 4).cdf).pvalue > 0.001
    # Increasing within each component and, the components barely overlapping, nearly so
    # overall: the copula's correlation carries over to the scores.
    grid = np.linspace(0.001, 0.999, 999)
    x = SKEWED.from_uniform(grid)
    assert np.all(np.diff(x[grid < 0.1]) > 0) and np.all(np.diff(x[grid >= 0.1]) > 0)
    assert stats.spearmanr(u[:5000], SKEWED.from_uniform(u[:5000])).statistic > 0.99
    with pytest.raises(ValueError, match="weights"):
        BetaMixture(((0.5, 2.0, 2.0),))


def test_scenarios_have_their_true_means() -> None:
    rng = np.random.default_rng(1)
    for sc in (*MEAN_SCENARIOS, *DIFFERENCE_SCENARIOS):
        data = sc.draw(4000, 50, rng)
        assert data.shape == (4000, 50)
        assert data.mean() == pytest.approx(sc.true_mean, abs=0.003), sc.name
        assert sc.family in ("tight", "skewed", "bimodal")
    assert {sc.family for sc in scenarios("mean")} == {"tight", "skewed", "bimodal"}
    assert any(sc.true_mean == 0 for sc in scenarios("difference"))
    assert any(sc.true_mean < 0 for sc in scenarios("difference"))
    with pytest.raises(ValueError, match="kind"):
        scenarios("median")  # type: ignore[arg-type]


def test_paired_scores_are_correlated() -> None:
    sc = DIFFERENCE_SCENARIOS[0]
    ref, variant = sc.draw_pair(1, 20_000, np.random.default_rng(2))
    assert variant is not None
    assert 0.6 < np.corrcoef(ref[0], variant[0])[0, 1] < 0.75  # copula rho 0.7


def test_targets_scale_with_the_level() -> None:
    assert TARGETS["tight"].coverage(0.95) == pytest.approx(0.93)
    assert TARGETS["skewed"].coverage(0.95) == pytest.approx(0.90)
    assert TARGETS["tight"].coverage(0.99) == pytest.approx(0.986)
    assert TARGETS["skewed"].from_n == 20


def test_simulate_is_seeded_and_cells_are_independent() -> None:
    sc = MEAN_SCENARIOS[1]
    a = simulate(sc, 8, ["t", "percentile"], n_studies=300, n_resamples=200, seed=4)
    assert a == simulate(sc, 8, ["t", "percentile"], n_studies=300, n_resamples=200, seed=4)
    # The studies depend on (seed, scenario, n) only: t (no resampling) sees the same ones
    # whatever the other methods are.
    assert simulate(sc, 8, ["t"], n_studies=300, seed=4)["t"] == a["t"]
    assert simulate(sc, 8, ["t"], n_studies=300, seed=5)["t"] != a["t"]
    assert set(a["t"]) == {"coverage", "median_width"}
    with pytest.raises(ValueError, match="at least 2 cases"):
        simulate(sc, 1, ["t"])
    with pytest.raises(ValueError, match="n_studies"):
        simulate(sc, 5, ["t"], n_studies=0)
    with pytest.raises(ValueError, match="unknown interval method"):
        simulate(sc, 5, ["z"])


def test_simulate_measures_known_coverages() -> None:
    # Nearly normal scores: the t interval's coverage is its nominal level at any n.
    normalish = Scenario("narrow", "tight", "mean", BetaMixture(((1.0, 500.0, 500.0),)))
    t = simulate(normalish, 5, ["t"], 0.9, n_studies=4000)["t"]["coverage"]
    assert t == pytest.approx(0.9, abs=0.015)
    # The percentile bootstrap's intervals at 4 cases are too narrow (issue 19: about 80 %).
    res = simulate(MEAN_SCENARIOS[0], 4, ["t", "percentile"], n_studies=2000, n_resamples=500)
    assert 0.74 < res["percentile"]["coverage"] < 0.85
    assert res["percentile"]["median_width"] < 0.7 * res["t"]["median_width"]


def test_simulate_seeds_shows_what_leaving_the_seeds_out_costs() -> None:
    sc = DIFFERENCE_SCENARIOS[0]
    loud = SeedNoise(between=0.03, within=0.01)
    res = simulate_seeds(sc, 30, 3, ["t_seeds_cases", "t_cases"], n_studies=1000, noise=loud)
    assert res["t_seeds_cases"]["coverage"] > 0.93
    assert res["t_cases"]["coverage"] < 0.85
    with pytest.raises(ValueError, match="not a difference scenario"):
        simulate_seeds(MEAN_SCENARIOS[0], 8, 2, ["t_cases"])
    with pytest.raises(ValueError, match="seeds"):
        simulate_seeds(sc, 8, 0, ["t_cases"])
