"""Counterfactual responsiveness, co-occurrence clusters and the closed loop, on hand-built toy
models whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from negrec.data import Feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.eval.recommender import from_model
from negrec.eval.counterfactual import (cooccurrence_clusters, log_histories, responsiveness,
                                        simulated_histories)
from negrec.train.objectives import OBJECTIVES
from negrec.sim import SimConfig, Simulator
from toy_models import ScoreTableModel

NTR = OBJECTIVES["input_ntr"].inputs  # what an input_ntr model sees

# 4 clusters of 20 items (items c*20 .. c*20+19), each item its own creator
V, C, PER = 80, 4, 20
CLUSTER = np.repeat(np.arange(C), PER).astype(np.int32)
META = ItemMeta(raw_ids=np.arange(V), cluster=CLUSTER, cluster_names=[f"c{c}" for c in range(C)],
                creator=np.arange(V, dtype=np.int32), creator_names=[str(i) for i in range(V)])


def same_cluster_table(jitter_seed: int = 0) -> torch.Tensor:
    """[V + 1, V]: after item x, every item of x's cluster scores above every other item."""
    g = torch.Generator().manual_seed(jitter_seed)
    t = torch.rand(V + 1, V, generator=g) * 0.1
    c = torch.from_numpy(CLUSTER).long()
    t[:V] += (c[:, None] == c[None, :]).float()
    return t


def other_cluster_table() -> torch.Tensor:
    """After item x, the items of the next cluster first (none of x's cluster in the top 10)."""
    c = torch.from_numpy(CLUSTER).long()
    t = torch.rand(V + 1, V, generator=torch.Generator().manual_seed(1)) * 0.1
    t[:V] += (((c[:, None] + 1) % C) == c[None, :]).float()
    return t


def histories_ending_before(items: np.ndarray, seed: int = 0):
    """One short history per branched item, made of items of *other* clusters."""
    rng = np.random.default_rng(seed)
    out = []
    for x in items:
        others = np.flatnonzero(CLUSTER != CLUSTER[x])
        h = rng.choice(others, 3, replace=False).tolist()
        out.append((h, [int(Feedback.POSITIVE)] * 3))
    return out


def test_model_that_ignores_feedback_has_zero_responsiveness():
    # always recommends the branched item's cluster: similarity 1 in every branch
    model = ScoreTableModel(same_cluster_table())
    branched = np.arange(0, V, 3)
    res = responsiveness(from_model(model, NTR), histories_ending_before(branched), branched, META,
                         actions=("dislike", "skip"), bootstrap=200)
    for action in ("dislike", "skip"):
        np.testing.assert_array_equal(res.similarity["cluster"][action], 1.0)
        e = res.responsiveness["cluster"][action]
        assert (e.mean, e.ci_low, e.ci_high) == (0.0, 0.0, 0.0)
        assert not e.excludes_zero()
    # each item is its own creator, excluded as history: creator share is 0 -> undefined
    assert math.isnan(res.responsiveness["creator"]["dislike"].mean)
    assert res.repeated["cluster"][3].mean == 0.0


def test_model_that_leaves_the_cluster_after_a_dislike_has_minus_one():
    model = ScoreTableModel(same_cluster_table(), by_feedback={int(Feedback.DISLIKE): other_cluster_table()})
    branched = np.arange(0, V, 2)
    res = responsiveness(from_model(model, NTR), histories_ending_before(branched), branched, META,
                         actions=("dislike", "skip"), bootstrap=200)
    d = res.responsiveness["cluster"]["dislike"]
    assert d.mean == -1.0 and d.ci_low == -1.0 and d.ci_high == -1.0 and d.excludes_zero()
    assert res.responsiveness["cluster"]["skip"].mean == 0.0  # skips not special in this model
    # repeated dislikes: the last dislike drives this model, so every length gives -1
    for n in (1, 2, 3):
        assert res.repeated["cluster"][n].mean == -1.0
        assert res.repeated["cluster"][n].n == len(branched)


def test_partial_back_off_is_measured_exactly():
    # after a dislike of x: 4 items of x's cluster, then 6 of the next cluster, then the rest;
    # the other items of x's cluster last, so the top 10 holds exactly 4 of x's cluster
    t = torch.zeros(V + 1, V)
    for x in range(V):
        same = np.flatnonzero((CLUSTER == CLUSTER[x]) & (np.arange(V) != x))
        nxt = np.flatnonzero(CLUSTER == (CLUSTER[x] + 1) % C)
        t[x, torch.from_numpy(same[:4])] = 1.0
        t[x, torch.from_numpy(same[4:])] = -1.0
        t[x, torch.from_numpy(nxt[:6])] = 0.5
    model = ScoreTableModel(same_cluster_table(), by_feedback={int(Feedback.DISLIKE): t})
    branched = np.arange(V)
    res = responsiveness(from_model(model, NTR), histories_ending_before(branched), branched, META,
                         actions=("dislike",), repeated=(), bootstrap=100)
    np.testing.assert_allclose(res.similarity["cluster"]["positive"], 1.0)
    np.testing.assert_allclose(res.similarity["cluster"]["dislike"], 0.4)
    assert res.responsiveness["cluster"]["dislike"].mean == pytest.approx(-0.6)
    assert res.repeated == {"cluster": {}, "creator": {}}


def test_ci_width_shrinks_with_more_histories_of_a_model():
    # a model whose back-off after a dislike differs between items (0..10 of the top 10)
    rng = np.random.default_rng(3)
    keep = rng.integers(0, 11, V)
    dis = same_cluster_table(5).clone()
    for x in range(V):
        same = np.flatnonzero((CLUSTER == CLUSTER[x]) & (np.arange(V) != x))
        dis[x, torch.from_numpy(same[keep[x]:])] -= 2.0  # below every other item
    model = ScoreTableModel(same_cluster_table(), by_feedback={int(Feedback.DISLIKE): dis})
    widths = []
    for n in (20, 640):
        branched = rng.integers(0, V, n)
        res = responsiveness(from_model(model, NTR), histories_ending_before(branched, seed=n), branched, META,
                             actions=("dislike",), repeated=(), bootstrap=500)
        e = res.responsiveness["cluster"]["dislike"]
        expected = keep[branched].mean() / 10 - 1
        assert e.mean == pytest.approx(expected)
        widths.append(e.ci_high - e.ci_low)
    assert widths[0] > 3 * widths[1] > 0


def test_responsiveness_rejects_bad_arguments():
    model = ScoreTableModel(same_cluster_table())
    h = histories_ending_before(np.array([0, 1]))
    with pytest.raises(ValueError, match="2 histories but 3 branched items"):
        responsiveness(from_model(model, NTR), h, np.array([0, 1, 2]), META)
    with pytest.raises(ValueError, match="no histories"):
        responsiveness(from_model(model, NTR), [], np.array([], dtype=np.int64), META)
    with pytest.raises(ValueError, match="compared with the positive branch"):
        responsiveness(from_model(model, NTR), h, np.array([0, 1]), META, actions=("positive",))


def test_log_histories_branch_on_the_models_top1():
    model = ScoreTableModel(same_cluster_table())
    users = [0, 0, 0, 1, 1]
    items = [0, 25, 41, 60, 3]
    log = EventLog.from_events(users, items, np.arange(5), [1, 1, 1, 1, 1], item_meta=META)
    hist, branched, u = log_histories(from_model(model, NTR), log)
    assert [h[0] for h in hist] == [[0, 25, 41], [60, 3]]
    # top-1 after item 41 is the best unseen item of cluster 2; after item 3, of cluster 0
    assert CLUSTER[branched[0]] == 2 and branched[0] != 41
    assert CLUSTER[branched[1]] == 0 and branched[1] not in (0, 3)
    np.testing.assert_array_equal(u, [0, 1])


def _planted_log(num_users=300, blocks=5, per_block=30, length=20, seed=0):
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(num_users):
        b = rng.integers(blocks)
        users += [u] * length
        items += (b * per_block + rng.choice(per_block, length, replace=False)).tolist()
    n = len(users)
    return EventLog.from_events(users, items, np.arange(n), np.ones(n, int)), blocks, per_block


def test_cooccurrence_clusters_recover_a_planted_partition():
    log, blocks, per_block = _planted_log()
    labels = cooccurrence_clusters(log, blocks, seed=0)
    truth = log.item_meta.raw_ids.astype(int) // per_block
    assert labels.shape == (log.num_items,) and labels.min() >= 0
    # purity: each found cluster is (almost) one planted block, and all blocks are found
    purity = sum(np.bincount(truth[labels == k]).max() for k in np.unique(labels)) / len(labels)
    assert purity > 0.95
    assert len(np.unique(labels)) == blocks
    np.testing.assert_array_equal(labels, cooccurrence_clusters(log, blocks, seed=0))


def test_cooccurrence_clusters_errors_and_unseen_items():
    meta = ItemMeta.anonymous(np.arange(10))
    log = EventLog.from_events([0, 0, 1, 1], [0, 1, 2, 3], [0, 1, 2, 3], [1, 1, 1, 1], item_meta=meta)
    labels = cooccurrence_clusters(log, 2)
    assert (labels[4:] == -1).all() and (labels[:4] >= 0).all()
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]
    with pytest.raises(ValueError, match="need at least 5 items that co-occur"):
        cooccurrence_clusters(log, 5)


SIM = SimConfig(num_users=50, events_per_user=10, num_items=400, num_creators=80, num_clusters=8)


def test_simulated_histories_consume_the_models_recommendations():
    sim = Simulator(SIM, seed=0)
    model = ScoreTableModel(torch.rand(SIM.num_items + 1, SIM.num_items,
                                       generator=torch.Generator().manual_seed(0)))
    hist, branched, state = simulated_histories(from_model(model, NTR), sim, num_users=30, steps=6, seed=1)
    assert len(hist) == 30 and all(len(h[0]) == 6 == len(set(h[0])) for h in hist)
    assert all(set(f) <= {1, 2, 3, 4} for _, f in hist)
    assert all(b not in h[0] for b, h in zip(branched, hist))
    assert state.seen.sum() == 30 * 6
    again, b2, _ = simulated_histories(from_model(model, NTR), sim, num_users=30, steps=6, seed=1)
    assert again == hist and np.array_equal(branched, b2)


def test_same_cluster_followers_score_only_the_clusters_items(monkeypatch):
    """The items that follow the branched one in repeated-dislike branches were found by
    ranking the whole catalogue for every history ([H, V] ids and scores: 24 GB for 2,000
    histories over 1M items); each cluster's histories are now scored against that cluster's
    items only, with the same answer. A history that holds most of the cluster gets only the
    items it does not hold (they were padded with history items)."""
    import negrec.models.base as base
    from negrec.eval.counterfactual import _same_cluster_followers
    from negrec.eval.recommend import recommend
    from negrec.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=8, num_layers=1, num_heads=2, max_len=30), V).eval()
    rng = np.random.default_rng(0)
    branched = rng.integers(0, V, 10)
    hists = [(rng.choice(np.flatnonzero(CLUSTER != CLUSTER[x]), 5, replace=False).tolist(),
              [int(Feedback.POSITIVE)] * 5) for x in branched]
    x = int(branched[0])  # history 0 holds all but two items of its branched item's cluster
    held = [i for i in np.flatnonzero(CLUSTER == CLUSTER[x]) if i != x][:PER - 2]
    hists[0] = (held, [int(Feedback.DISLIKE)] * len(held))
    n = 4
    ranked, scores = recommend(model, NTR, hists, V)  # the whole catalogue, history excluded
    want = [[int(i) for i, s in zip(ranked[h], scores[h])
             if CLUSTER[i] == CLUSTER[branched[h]] and i != branched[h] and s > -np.inf][:n]
            for h in range(len(hists))]
    assert len(want[0]) == 1 and all(len(w) == n for w in want[1:])

    scored = []
    real = base.catalogue_blocks

    def counting(states, table, **kw):
        scored.append(table.shape[0])
        return real(states, table, **kw)

    monkeypatch.setattr(base, "catalogue_blocks", counting)
    assert _same_cluster_followers(from_model(model, NTR), hists, branched, CLUSTER, n) == want
    assert scored and max(scored) == PER
    # a recommender known only by its top-K lists: the followers are taken from its top
    # FOLLOWER_DEPTH (here deeper than the catalogue left after the longest history)
    from negrec.eval.recommender import from_function

    monkeypatch.setattr(base, "catalogue_blocks", real)
    opaque = from_function(from_model(model, NTR).recommend)
    assert _same_cluster_followers(opaque, hists, branched, CLUSTER, n) == want
