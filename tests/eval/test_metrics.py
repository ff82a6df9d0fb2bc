"""Offline metrics on models whose ranks are known, and the train/evaluate/recommend CLI."""

from __future__ import annotations

import math

import pytest
import torch

from negrec.data import EventLog, leave_one_out
from negrec.eval import evaluate, held_out_ranks
from negrec.eval.recommender import from_model
from negrec.train.objectives import OBJECTIVES
from toy_models import ScoreTableModel

V = 6


def toy_log():
    # three users; last event = test, previous = valid
    users = [0] * 4 + [1] * 4 + [2] * 3
    items = [0, 1, 2, 3, 0, 1, 4, 5, 2, 3, 4]
    fb = [1, 1, 1, 1, 1, 1, 1, 4, 1, 1, 2]
    return EventLog.from_events(users, items, list(range(len(users))), fb)


def ranking_model():
    # whatever the last item, candidates rank 5 > 4 > 3 > 2 > 1 > 0
    row = torch.arange(V, dtype=torch.float32)
    return ScoreTableModel(row.expand(V + 1, V).clone())


def test_ranks_exclusion_and_metrics():
    log = toy_log()
    split = leave_one_out(log)
    obj = OBJECTIVES["input_only"].inputs
    model = ranking_model()
    ranks = held_out_ranks(model, split.test, obj, exclude_history=False)
    # test items: user0 -> 3, user1 -> 5, user2 -> 4; ranks among 6 items by descending id
    assert ranks.tolist() == [3, 1, 2]
    # the reverse order (0 best): history items outrank the held-out ones unless excluded
    reverse = ScoreTableModel(-torch.arange(V, dtype=torch.float32).expand(V + 1, V).clone())
    assert held_out_ranks(reverse, split.test, obj, exclude_history=False).tolist() == [4, 6, 5]
    # user0 history {0,1,2} -> 3 ranks first; user1 history {0,1,4} -> 5 after 2, 3;
    # user2 history {2,3} -> 4 after 0, 1
    assert held_out_ranks(reverse, split.test, obj, exclude_history=True).tolist() == [1, 3, 3]
    for max_scores in (1, 2, 5):  # blocks of one score, of parts of a row, of rows
        for m, exclude, want in ((model, False, [3, 1, 2]), (reverse, True, [1, 3, 3])):
            assert held_out_ranks(m, split.test, obj, exclude_history=exclude,
                                  max_scores=max_scores).tolist() == want
    res = evaluate(from_model(model, obj, exclude_history=False), split.test, ks=(1, 3), bootstrap=200)
    # positive-last users: user0 (rank 3); dislike-last: user1 (rank 1); neutral: user2
    assert res.counts == {"users": 3, "positive_users": 1, "dislike_users": 1, "other_users": 1}
    assert res.metrics["recall@1"] == 0.0 and res.metrics["recall@3"] == 1.0
    assert res.metrics["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert res.metrics["mrr"] == pytest.approx(1 / 3)
    assert res.metrics["dislike_exposure@1"] == 1.0
    assert res.metrics["hr_gap@3"] == 0.0


def test_a_recommender_known_by_its_top_k_gets_the_same_figures_up_to_k():
    """The same model as a plain function (top-K lists only): ranks up to K are the full
    ranking's, beyond K a miss; every metric at a cut-off <= K is identical, MRR is MRR@K."""
    from negrec.eval.recommender import from_function

    split = leave_one_out(toy_log())
    obj = OBJECTIVES["input_only"].inputs
    model = from_model(ranking_model(), obj, exclude_history=False)
    full = evaluate(model, split.test, ks=(1, 2), bootstrap=50)
    top = evaluate(from_function(model.recommend, name="f"), split.test, ks=(1, 2), bootstrap=50)
    assert (full.ranking, top.ranking) == ("full", "top-2")
    assert full.per_user["rank"].tolist() == [3, 1, 2] and top.per_user["rank"].tolist() == [3, 1, 2]
    for name in ("recall@1", "recall@2", "ndcg@2", "dislike_exposure@1", "hr_gap@2"):
        assert top.metrics[name] == full.metrics[name] and top.ci[name] == full.ci[name]
    # user0's held-out item is 3rd: 1/3 in the full ranking, beyond the top-2 list: 0
    assert full.metrics["mrr"] == pytest.approx(1 / 3) and top.metrics["mrr"] == 0.0
    assert top.to_dict()["ranking"] == "top-2"
