"""Baselines: most-popular, item-kNN co-occurrence, the disliked-cluster filter and the
feedback-blind ablation, on logs and recommenders whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.data import EventLog, Feedback
from negrec.errors import UserError
from negrec.eval.baselines import (BASELINES, FeedbackBlind, FilterDisliked, ItemKNN, baselines,
                                   most_popular)
from negrec.eval.recommender import from_function, recommend_batched

P, D = int(Feedback.POSITIVE), int(Feedback.DISLIKE)


def log_of(rows):
    """rows: per user, a list of (item, code)."""
    users = [u for u, r in enumerate(rows) for _ in r]
    items = [i for r in rows for i, _ in r]
    codes = [c for r in rows for _, c in r]
    return EventLog.from_events(users, items, list(range(len(items))), codes)


# 6 items; 0 and 1 liked together by 3 users, 2 and 3 by 2 users, 4 liked alone, 5 disliked
LOG = log_of([[(0, P), (1, P)], [(0, P), (1, P)], [(0, P), (1, P), (4, P)],
              [(2, P), (3, P)], [(2, P), (3, P), (5, D)], [(4, P)]])


def test_most_popular_ranks_by_positive_events_and_excludes_the_history():
    rec = most_popular(LOG)
    top = recommend_batched(rec, [([0], [P]), ([], [])], 3, LOG.num_items)
    assert top.tolist() == [[1, 2, 3], [0, 1, 2]]  # 0, 1: 3 likes; 2, 3, 4: 2 likes, by id
    assert rec.name == "most_popular"


def test_item_knn_recommends_what_was_liked_with_the_recent_likes():
    knn = ItemKNN(LOG)
    # cosine: sim(0, 1) = 3 / 3 = 1, sim(0, 4) = 1 / sqrt(3 * 2)
    assert knn.similarity[0, 1].item() == pytest.approx(1.0)
    assert knn.similarity[0, 4].item() == pytest.approx(1 / np.sqrt(6))
    top = recommend_batched(knn, [([0], [P]), ([2], [P]), ([2], [D])], 2, LOG.num_items)
    assert top[0].tolist() == [1, 4] and top[1].tolist() == [3, 0]
    # a disliked item is no seed: the history has no like, so the popularity order is left
    assert top[2].tolist() == [0, 1]


def fixed(slate):
    return from_function(lambda items, feedback, k: np.tile(slate[:k], (len(items), 1)), name="fixed")


def test_filter_disliked_drops_the_cluster_for_the_next_steps_only():
    cluster = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    rec = FilterDisliked(fixed(np.arange(8)), cluster, steps=2)
    hist = [([2], [D]),             # cluster 1 disliked just now: 2, 3 dropped
            ([2, 4, 5], [D, P, P]),  # the dislike is 3 events back: nothing dropped
            ([2, 0], [D, D])]        # clusters 0 and 1 dropped
    top = recommend_batched(rec, hist, 3, 8)
    # the base is asked for at most 8 - 3 (the longest history, which a base may exclude) = 5
    # items, 0..4: in the last row only 4 is allowed, and dropped items fill the slate's end
    # in the base's order
    assert top.tolist() == [[0, 1, 4], [0, 1, 2], [4, 0, 1]]
    assert rec.name == "fixed+filter_disliked"
    with pytest.raises(UserError, match="steps must be >= 1; got 0"):
        FilterDisliked(fixed(np.arange(8)), cluster, steps=0)


def test_feedback_blind_shows_every_event_as_positive():
    seen = []

    def spy(items, feedback, k):
        seen.extend(f.tolist() for f in feedback)
        return np.tile(np.arange(k), (len(items), 1))

    rec = FeedbackBlind(from_function(spy, name="spy"))
    recommend_batched(rec, [([1, 2], [D, int(Feedback.SKIP)])], 2, 6)
    assert seen == [[P, P]] and rec.name == "spy+feedback_blind"


def test_baselines_are_built_by_name():
    built = baselines(LOG, LOG.item_meta)
    assert list(built) == list(BASELINES)
    assert all(recommend_batched(r, [([0], [P])], 2, 6).shape == (1, 2) for r in built.values())
    with pytest.raises(UserError, match="unknown nope; expected some of most_popular"):
        baselines(LOG, LOG.item_meta, ["nope"])
