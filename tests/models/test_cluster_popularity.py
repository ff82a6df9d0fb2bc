"""The popularity-within-liked-clusters baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negrec.data import EventLog, Feedback, leave_one_out
from negrec.data.log import ItemMeta
from negrec.errors import UserError
from negrec.eval.metrics import evaluate
from negrec.eval.recommender import from_model
from negrec.models.cluster_popularity import ClusterPopularity
from negrec.models.popularity import MostPopular
from negrec.sim import Simulator, preset
from negrec.train.objectives import OBJECTIVES

P, D, S = int(Feedback.POSITIVE), int(Feedback.DISLIKE), int(Feedback.SKIP)


def _log() -> EventLog:
    # 6 items: 0-2 in cluster 0, 3-4 in cluster 1, 5 without a cluster
    users = [0, 0, 0, 1, 1, 1, 2, 2]
    items = [0, 1, 3, 0, 3, 4, 5, 1]
    feedback = [P, P, D, P, S, P, P, P]
    meta = ItemMeta(raw_ids=np.arange(6), cluster=np.array([0, 0, 0, 1, 1, -1], np.int32),
                    cluster_names=["a", "b"])
    return EventLog.from_events(users, items, list(range(len(users))), feedback, item_meta=meta)


def _reference(log: EventLog, items: list[int], feedback: list[int]) -> np.ndarray:
    """The module docstring's formula, written out in numpy for one history."""
    cluster = np.array([0, 0, 0, 1, 1, 2])  # the unknown cluster is a cluster of its own
    C = 3
    p = log.item_counts([Feedback.POSITIVE]) + 1.0
    q = np.bincount(cluster, weights=p, minlength=C) / p.sum()
    liked = [cluster[i] for i, f in zip(items, feedback) if f == P]
    n_c = np.bincount(np.array(liked, dtype=np.int64), minlength=C)
    s = (n_c + C * q) / (len(liked) + C)
    return np.log(p) + np.log(s / q)[cluster]


def test_scores_are_popularity_times_the_users_lift_of_the_items_cluster():
    log = _log()
    model = ClusterPopularity(log)
    for items, feedback in ([[0, 1, 3], [P, P, D]], [[3, 4, 5], [S, P, P]], [[2], [D]]):
        it = torch.tensor([items])
        fb = torch.tensor([feedback], dtype=torch.int8)
        state = model.last_state(it, fb, torch.ones_like(it, dtype=torch.bool))
        got = (state @ model.item_table().T)[0].numpy()
        np.testing.assert_allclose(got, _reference(log, items, feedback), rtol=1e-5, atol=1e-6)


def test_only_liked_events_count_and_padding_is_ignored():
    model = ClusterPopularity(_log())
    pad = model.pad_item
    mask = torch.tensor([[False, False, True, True], [True, True, True, True]])
    items = torch.tensor([[pad, pad, 3, 0], [3, 4, 3, 0]])
    # row 1 dislikes and skips cluster 1 before liking item 0: the same as row 0
    fb = torch.tensor([[0, 0, D, P], [S, D, D, P]], dtype=torch.int8)
    states = model.last_state(items, fb, mask)
    torch.testing.assert_close(states[0], states[1])


def test_knowing_the_liked_clusters_beats_most_popular_on_the_simulator():
    log, _ = Simulator(preset("default", num_users=400, events_per_user=40), seed=3).generate()
    split = leave_one_out(log)
    cp = ClusterPopularity(split.train)
    ours = evaluate(from_model(cp, cp.inputs), split.test, ks=(10,), bootstrap=0)
    popular = evaluate(from_model(MostPopular(split.train), OBJECTIVES["positive_only"].inputs),
                       split.test, ks=(10,), bootstrap=0)
    assert ours.metrics["ndcg@10"] > popular.metrics["ndcg@10"]


def test_needs_item_clusters():
    log = _log()
    no_clusters = EventLog.from_events([0, 0], [0, 1], [0, 1], [P, P],
                                       item_meta=ItemMeta.anonymous(np.arange(2)))
    assert ClusterPopularity(log).num_clusters == 3
    with pytest.raises(UserError, match="needs item clusters"):
        ClusterPopularity(no_clusters)
