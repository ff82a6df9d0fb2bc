"""Pooling measurements over training seeds and comparing with the placebo control."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.eval.counterfactual import ResponsivenessResult
from negrec.eval.stats import Estimate
from negrec.experiments.measure import Measurement
from negrec.experiments.pooling import control_difference, pooled_mean, pooled_responsiveness


def fake(dislike: np.ndarray, positive: np.ndarray) -> Measurement:
    sims = {"cluster": {"positive": positive, "dislike": dislike}}
    result = ResponsivenessResult(
        k=10, num_histories=len(positive), actions=["dislike"], similarity=sims,
        responsiveness={}, repeated={"cluster": {1: Estimate(0, 0, 0, 0)}},
        repeated_similarity={"cluster": {1: (dislike, positive)}})
    return Measurement(result=result)


def test_pooled_responsiveness_is_the_ratio_of_means_over_every_seed():
    rng = np.random.default_rng(0)
    pos = [rng.uniform(0.2, 0.6, 200) for _ in range(3)]
    runs = [fake(p * f, p) for p, f in zip(pos, (0.5, 0.4, 0.3))]
    out = pooled_responsiveness(runs, bootstrap=400)
    e = out["responsiveness"]["cluster"]["dislike"]
    all_d = np.concatenate([r.result.similarity["cluster"]["dislike"] for r in runs])
    assert e["mean"] == pytest.approx(all_d.mean() / np.concatenate(pos).mean() - 1)
    assert e["seeds"] == 3 and out["seeds"] == 3 and out["num_histories"] == 600
    assert out["per_seed"]["cluster"]["dislike"] == pytest.approx([-0.5, -0.6, -0.7])
    # the seeds disagree (-50% to -70%): the interval covers that spread, not only histories
    assert e["ci_low"] <= -0.65 and e["ci_high"] >= -0.55
    assert out["repeated_dislikes"]["cluster"]["1"]["mean"] == pytest.approx(e["mean"])


def test_control_difference_subtracts_the_control_s_responsiveness():
    rng = np.random.default_rng(1)
    pos = [rng.uniform(0.2, 0.6, 300) for _ in range(3)]
    model = [fake(p * 0.4, p) for p in pos]  # -60%
    control = [fake(p * 0.9, p) for p in pos]  # -10%: a mere change of the input code
    diff = control_difference(model, control, bootstrap=300)["cluster"]["dislike"]
    assert diff["mean"] == pytest.approx(-0.5)
    assert diff["ci_high"] < 0 and diff["seeds"] == diff["control_seeds"] == 3
    same = control_difference(control, control, bootstrap=300)["cluster"]["dislike"]
    assert same["mean"] == pytest.approx(0.0) and same["ci_low"] <= 0 <= same["ci_high"]


def test_pooled_mean_pairs_users_seed_by_seed():
    rng = np.random.default_rng(2)
    base = [rng.random(100) for _ in range(3)]
    better = [b + 0.1 for b in base]
    e = pooled_mean(better, base, bootstrap=200)
    assert e["mean"] == pytest.approx(0.1) and e["ci_low"] == pytest.approx(0.1)
    rel = pooled_mean([b * 0.5 for b in base], base, relative=True, bootstrap=200)
    assert rel["mean"] == pytest.approx(-0.5)
