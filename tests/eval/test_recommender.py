"""The Recommender protocol's adapters and checked batched calls; responsiveness of
recommenders whose answers are known exactly (the targets of issue 15), and properties over
random histories."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from negrec.data import Feedback
from negrec.data.log import ItemMeta
from negrec.errors import UserError
from negrec.eval.baselines import FeedbackBlind, FilterDisliked
from negrec.eval.counterfactual import responsiveness
from negrec.eval.recommend import recommend
from negrec.eval.recommender import (Recommender, check_recommendations, from_function,
                                     from_model, recommend_batched)
from negrec.train.objectives import OBJECTIVES
from toy_models import ScoreTableModel

NTR = OBJECTIVES["input_ntr"].inputs
# 4 clusters of 20 items (items c*20 .. c*20+19)
V, C, PER, K = 80, 4, 20, 10
CLUSTER = np.repeat(np.arange(C), PER).astype(np.int32)
META = ItemMeta(raw_ids=np.arange(V), cluster=CLUSTER, cluster_names=[f"c{c}" for c in range(C)],
                creator=np.arange(V, dtype=np.int32), creator_names=[str(i) for i in range(V)])
POS, DIS = int(Feedback.POSITIVE), int(Feedback.DISLIKE)


def same_cluster_first(items, feedback, k):
    """After item x: unseen items of x's cluster first (in id order), then the others."""
    out = []
    for it in items:
        unseen = np.setdiff1d(np.arange(V), it)
        same = CLUSTER[unseen] == CLUSTER[it[-1]]
        out.append(np.concatenate([unseen[same], unseen[~same]])[:k])
    return np.array(out, dtype=np.int64)


def halves_after_dislike(items, feedback, k):
    """same_cluster_first, but after a dislike only the first half of the slate is of the
    cluster (then the other clusters' items, then the rest of the cluster's)."""
    out = []
    for it, fb in zip(items, feedback):
        unseen = np.setdiff1d(np.arange(V), it)
        same = CLUSTER[unseen] == CLUSTER[it[-1]]
        if fb[-1] == DIS:
            half = unseen[same][:k // 2]
            order = [half, unseen[~same], unseen[same][k // 2:]]
        else:
            order = [unseen[same], unseen[~same]]
        out.append(np.concatenate(order)[:k])
    return np.array(out, dtype=np.int64)


def histories(branched, seed=0, length=3):
    """One history per branched item, of items of other clusters, random feedback."""
    rng = np.random.default_rng(seed)
    out = []
    for x in branched:
        others = np.flatnonzero(CLUSTER != CLUSTER[x])
        out.append((rng.choice(others, length, replace=False).tolist(),
                    rng.choice([POS, DIS, int(Feedback.SKIP)], length).tolist()))
    return out


def cluster_dislike(rec, branched, **kw):
    res = responsiveness(rec, histories(branched), branched, META, actions=("dislike",),
                         bootstrap=200, **kw)
    return res.responsiveness["cluster"]["dislike"], res


BRANCHED = np.arange(0, V, 3)


def test_a_recommender_that_never_recommends_a_disliked_cluster_again_gives_minus_100():
    est, res = cluster_dislike(FilterDisliked(from_function(same_cluster_first), CLUSTER), BRANCHED)
    assert (est.mean, est.ci_low, est.ci_high) == (-1.0, -1.0, -1.0)
    assert all(e.mean == -1.0 for e in res.repeated["cluster"].values())


def test_a_recommender_that_ignores_feedback_gives_0_with_interval_0_0():
    est, res = cluster_dislike(FeedbackBlind(from_function(halves_after_dislike)), BRANCHED)
    assert (est.mean, est.ci_low, est.ci_high) == (0.0, 0.0, 0.0)
    assert all((e.mean, e.ci_low, e.ci_high) == (0, 0, 0) for e in res.repeated["cluster"].values())


def test_a_recommender_that_removes_half_of_the_cluster_gives_minus_50():
    est, _ = cluster_dislike(from_function(halves_after_dislike), BRANCHED)
    assert est.mean == pytest.approx(-0.5) and est.ci_low <= -0.5 <= est.ci_high


@given(st.integers(0, 2**31 - 1), st.integers(1, 12), st.integers(1, 6))
def test_properties_over_random_histories(seed, length, steps):
    """Any history and branched item: the feedback-blind ablation never moves (0 exactly); the
    half-removal recommender is exactly -50%; after the disliked-cluster filter no item of the
    branched item's cluster is left in the dislike branch's slate whenever the catalogue still
    holds K allowed items (else dropped items fill the slate's end, as documented)."""
    rng = np.random.default_rng(seed)
    branched = rng.integers(0, V, 7)
    hist = histories(branched, seed=seed, length=length)
    for rec, want in ((FeedbackBlind(from_function(halves_after_dislike)), 0.0),
                      (from_function(halves_after_dislike), -0.5)):
        res = responsiveness(rec, hist, branched, META, actions=("dislike",), bootstrap=20,
                             repeated=())
        assert res.responsiveness["cluster"]["dislike"].mean == pytest.approx(want)
    rec = FilterDisliked(from_function(same_cluster_first), CLUSTER, steps=steps)
    res = responsiveness(rec, hist, branched, META, actions=("dislike",), bootstrap=20,
                         repeated=())
    share = res.similarity["cluster"]["dislike"]
    assert np.all((share >= 0) & (share <= 1))
    for h, (items, codes) in enumerate(hist):
        items, codes = items + [int(branched[h])], codes + [DIS]
        recent = np.arange(len(items)) >= len(items) - steps
        banned = set(CLUSTER[np.array(items)[recent & (np.array(codes) == DIS)]].tolist())
        allowed = [i for i in range(V) if i not in items and CLUSTER[i] not in banned]
        if len(allowed) >= K:
            assert share[h] == 0.0


def test_the_model_adapter_is_the_models_own_recommendations():
    model = ScoreTableModel(torch.rand(V + 1, V, generator=torch.Generator().manual_seed(3)))
    hist = histories(BRANCHED)
    adapter = from_model(model, NTR)
    assert isinstance(adapter, Recommender)
    np.testing.assert_array_equal(recommend_batched(adapter, hist, K, V),
                                  recommend(model, NTR, hist, K)[0])
    keep = from_model(model, NTR, exclude_history=False)
    np.testing.assert_array_equal(recommend_batched(keep, hist, K, V),
                                  recommend(model, NTR, hist, K, exclude_history=False)[0])


def test_recommenders_are_called_in_batches_of_arrays():
    calls = []

    def spy(items, feedback, k):
        calls.append((len(items), items[0].dtype, feedback[0].dtype))
        return same_cluster_first(items, feedback, k)

    top = recommend_batched(from_function(spy, name="spy"), histories(BRANCHED), K, V,
                            batch_size=10)
    assert top.shape == (len(BRANCHED), K) and top.dtype == np.int64
    assert calls == [(10, np.int64, np.int8), (10, np.int64, np.int8), (7, np.int64, np.int8)]


@pytest.mark.parametrize("answer, message", [
    (np.zeros((3, 9), np.int64), r"recommender 'bad': recommend\(\.\.\., k=10\) for 3 histories returned "
                                 r"shape \(3, 9\); expected \(3, 10\)"),
    (np.zeros((3, 10)), r"returned dtype float64; expected integer item ids"),
    (np.tile(np.arange(75, 85), (3, 1)), r"returned 15 item ids outside \[0, 80\) \(e.g. 80\)"),
    (np.tile(np.r_[np.arange(9), 4], (3, 1)), r"returned 3 rows with a repeated item "
                                              r"\(e.g. row 0: item 4 twice\)"),
    ("nonsense", r"shape \(\); expected \(3, 10\)"),
])
def test_a_bad_answer_is_refused_with_what_was_received(answer, message):
    bad = from_function(lambda items, feedback, k: answer, name="bad")
    with pytest.raises(UserError, match=message):
        recommend_batched(bad, histories(BRANCHED[:3]), K, V)


def test_check_recommendations_accepts_tensors_and_int32():
    got = check_recommendations(torch.arange(10).view(1, 10).int(), 1, 10, V, "t")
    assert got.dtype == np.int64 and got.tolist() == [list(range(10))]


def test_from_function_refuses_a_non_callable():
    with pytest.raises(UserError, match="expected a function .* got int"):
        from_function(3)
