"""Transformations of event logs (the permuted-feedback placebo)."""

from __future__ import annotations

import numpy as np

from negrec.data.transforms import permute_feedback
from negrec.sim import Simulator, preset


def test_permuted_feedback_keeps_everything_but_the_link():
    log, _ = Simulator(preset("default", num_users=200, events_per_user=30), seed=0).generate()
    p = permute_feedback(log, seed=3)
    np.testing.assert_array_equal(p.items, log.items)
    np.testing.assert_array_equal(p.offsets, log.offsets)
    np.testing.assert_array_equal(np.bincount(p.feedback), np.bincount(log.feedback))
    assert (p.feedback != log.feedback).mean() > 0.4
    np.testing.assert_array_equal(permute_feedback(log, seed=3).feedback, p.feedback)
    assert not np.array_equal(permute_feedback(log, seed=4).feedback, p.feedback)
    assert "permuted" in p.source
