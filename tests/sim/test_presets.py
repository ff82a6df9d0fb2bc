"""Simulator presets, the most-popular baseline and the permuted-feedback placebo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negrec.data import Feedback, leave_one_out
from negrec.data.transforms import permute_feedback
from negrec.eval.metrics import evaluate
from negrec.models.objectives import get_objective
from negrec.models.popularity import MostPopular
from negrec.sim import PRESETS, Simulator, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_generates_a_log_with_negative_feedback(name):
    log, _ = Simulator(preset(name, num_users=200, events_per_user=30), seed=0).generate()
    counts = log.feedback_counts()
    assert log.num_users == 200 and log.num_events == 6000
    assert counts["dislike"] > 0 and counts["skip"] > 0 and counts["positive"] > 0
    assert log.item_meta.has_creators == PRESETS[name].creators_visible


def test_presets_differ_in_what_they_claim():
    def rates(name):
        log, _ = Simulator(preset(name, num_users=300, events_per_user=40), seed=0).generate()
        c = log.feedback_counts()
        return {k: v / log.num_events for k, v in c.items()}, log

    base, base_log = rates("default")
    rare, _ = rates("rare_dislikes")
    assert rare["dislike"] < 0.5 * base["dislike"] and rare["skip"] > base["skip"]
    _, large = rates("large_catalog")
    assert large.num_items > 4 * base_log.num_items
    assert len(large.item_meta.cluster_names) > len(base_log.item_meta.cluster_names)
    _, nocreators = rates("no_creators")
    assert nocreators.item_meta.creator is None


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown simulator preset 'nope'; expected one of"):
        preset("nope")


def test_most_popular_ranks_by_positive_events_and_ignores_the_user():
    log, _ = Simulator(preset("default", num_users=300, events_per_user=30), seed=1).generate()
    split = leave_one_out(log)
    model = MostPopular(split.train)
    counts = split.train.item_counts([Feedback.POSITIVE])
    items = np.array([[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]])
    _, top = model.topk(torch.as_tensor(items), torch.as_tensor(np.ones((2, 5), np.int8)),
                        torch.as_tensor(items != model.pad_item), 10)
    assert (top[0] == top[1]).all()
    assert counts[top[0].numpy()].tolist() == sorted(counts[top[0].numpy()].tolist(), reverse=True)
    assert counts[int(top[0, 0])] == counts.max()
    # the evaluation machinery accepts it like a trained model, and it is far from useless
    res = evaluate(model, split.test, get_objective("positive_only"), ks=(10,), bootstrap=0)
    assert res.metrics["recall@10"] > 10 / log.num_items


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
