"""negrec.testing.check_responsiveness: passes a recommender that backs off, fails one that
does not with the figure and its interval in the message; on a simulator and on a log."""

from __future__ import annotations

import pytest

from negrec.eval.baselines import FeedbackBlind, FilterDisliked, ItemKNN
from negrec.experiments.measure import MeasureSizes
from negrec.sim import SimConfig, Simulator
from negrec.testing import check_responsiveness

SIM = SimConfig(num_users=60, events_per_user=15, num_items=200, num_creators=40, num_clusters=5)
SIZES = MeasureSizes(histories=30, steps=4, actions=("dislike",), bootstrap=50)


def knn():
    log, _ = Simulator(SIM, seed=0).generate()
    return log, ItemKNN(log)


def test_a_recommender_that_backs_off_passes_and_one_that_does_not_fails_readably():
    log, base = knn()
    sim = Simulator(SIM, seed=0)
    est = check_responsiveness(FilterDisliked(base, log.item_meta.cluster), sim, -0.3, sizes=SIZES)
    assert est["mean"] == -1.0 and est["ci_high"] == -1.0
    with pytest.raises(AssertionError, match=r"item_knn\+feedback_blind: responsiveness to a "
                                             r"dislike \(cluster\) is \+0\.0% \[\+0\.0%, \+0\.0%\] "
                                             r"over 30 histories; required its mean at most -30\.0%"):
        check_responsiveness(FeedbackBlind(base), sim, -0.3, sizes=SIZES)


def test_a_log_world_and_the_interval_rule():
    log, base = knn()
    est = check_responsiveness(FilterDisliked(base, log.item_meta.cluster), log, -0.5,
                               sizes=SIZES, use="ci_high")
    assert est["ci_high"] == -1.0 and est["n"] == 30
    with pytest.raises(ValueError, match="use must be 'mean' or 'ci_high'"):
        check_responsiveness(base, log, use="median")
