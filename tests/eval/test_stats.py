"""Interval estimates (negrec.eval.stats): the bootstrap of a mean, the paired ratio of means,
the difference of two groups, and the two-stage bootstrap over seeds and units."""

from __future__ import annotations

import numpy as np
import pytest

import math

from negrec.eval.stats import bootstrap_ci, hierarchical_ci, ratio_of_means, ratio_of_means_ci


def test_one_seed_matches_a_plain_bootstrap_of_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 400)
    e = hierarchical_ci(lambda a: a.mean(), [(x,)], resamples=2000, seed=1)
    assert e.mean == pytest.approx(x.mean())
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert e.ci_low == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert e.ci_high == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    assert e.n == 400


def test_seed_to_seed_variation_widens_the_interval():
    # three "training seeds" whose means differ far more than the unit noise: an interval over
    # units only would be narrow; the two-stage bootstrap must cover the spread of the seeds
    rng = np.random.default_rng(0)
    seeds = [(rng.normal(m, 0.1, 500),) for m in (0.0, 1.0, 2.0)]
    e = hierarchical_ci(lambda a: a.mean(), seeds, resamples=2000, seed=0)
    units_only = hierarchical_ci(lambda a: a.mean(), [(np.concatenate([s[0] for s in seeds]),)],
                                 resamples=2000, seed=0)
    assert e.mean == pytest.approx(1.0, abs=0.02)
    assert e.ci_high - e.ci_low > 1.0
    assert units_only.ci_high - units_only.ci_low < 0.1


def test_paired_arrays_stay_paired():
    # b = a + 1 exactly: any resample that breaks the pairing would scatter the difference
    rng = np.random.default_rng(0)
    a = [rng.normal(0, 5, 300) for _ in range(3)]
    e = hierarchical_ci(lambda x, y: (y - x).mean(), [(s, s + 1.0) for s in a], resamples=300)
    assert e.mean == pytest.approx(1.0) and e.ci_low == pytest.approx(1.0) and e.ci_high == pytest.approx(1.0)


def test_independent_samples_are_passed_in_order():
    a = [(np.full(10, 2.0), np.full(10, 1.0))]
    b = [(np.full(20, 3.0), np.full(20, 2.0))]
    e = hierarchical_ci(lambda p, q, r, s: ratio_of_means(p, q) - ratio_of_means(r, s), a, b,
                        resamples=50)
    assert e.mean == pytest.approx(1.0 - 0.5)
    assert e.n == 30


def test_ratio_of_means_is_nan_for_a_zero_denominator():
    assert np.isnan(ratio_of_means(np.ones(3), np.zeros(3)))
    assert ratio_of_means(np.full(4, 0.5), np.full(4, 1.0)) == pytest.approx(-0.5)


def test_bad_samples_are_rejected():
    with pytest.raises(ValueError, match="equal lengths"):
        hierarchical_ci(lambda a, b: 0.0, [(np.ones(3), np.ones(4))])
    with pytest.raises(ValueError, match="at least one seed"):
        hierarchical_ci(lambda a: 0.0, [])


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    small = rng.random(50)
    big = rng.random(5000)
    lo, hi = bootstrap_ci(small, resamples=500)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(big, resamples=500)
    assert (hi2 - lo2) < (hi - lo) / 5  # ~ 1/sqrt(100) narrower
    assert all(math.isnan(x) for x in bootstrap_ci(np.zeros(0)))


def test_ci_width_shrinks_with_more_histories():
    rng = np.random.default_rng(0)
    a = rng.binomial(10, 0.3, 4000) / 10
    b = rng.binomial(10, 0.6, 4000) / 10
    widths = []
    for n in (50, 400, 4000):
        e = ratio_of_means_ci(a[:n], b[:n], resamples=1000, seed=0)
        assert e.ci_low <= e.mean <= e.ci_high
        widths.append(e.ci_high - e.ci_low)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]
    # about 1/sqrt(n): 4000 vs 400 histories shrinks the interval ~3.2x
    assert 2.0 < widths[1] / widths[2] < 5.0
    big = ratio_of_means_ci(a, b)
    assert big.mean == pytest.approx(a.mean() / b.mean() - 1) and big.excludes_zero()


def test_ratio_of_means_ci_edge_cases():
    e = ratio_of_means_ci(np.array([0.5, 0.5]), np.zeros(2))
    assert math.isnan(e.mean)  # undefined: no similar items in the positive branch
    e = ratio_of_means_ci(np.array([]), np.array([]))
    assert math.isnan(e.mean) and e.n == 0
    e = ratio_of_means_ci(np.array([1.0, 0.0]), np.array([1.0, 1.0]), resamples=0)
    assert e.mean == -0.5 and math.isnan(e.ci_low)
