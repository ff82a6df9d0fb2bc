"""Interval estimates over seeds and units (negrec.eval.stats)."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.eval.stats import hierarchical_ci, ratio_of_means


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
