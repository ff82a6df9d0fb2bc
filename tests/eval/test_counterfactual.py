"""Counterfactual responsiveness, co-occurrence clusters and the closed loop, on hand-built toy
models whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from negrec.data import Feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.eval.closed_loop import closed_loop, paired_relative_change
from negrec.eval.counterfactual import (cooccurrence_clusters, log_histories, ratio_of_means_ci,
                                        responsiveness, simulated_histories)
from negrec.models.objectives import get_objective
from negrec.sim import SimConfig, Simulator
from toy_models import ScoreTableModel

NTR = get_objective("input_ntr")

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
    res = responsiveness(model, NTR, histories_ending_before(branched), branched, META,
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
    res = responsiveness(model, NTR, histories_ending_before(branched), branched, META,
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
    res = responsiveness(model, NTR, histories_ending_before(branched), branched, META,
                         actions=("dislike",), repeated=(), bootstrap=100)
    np.testing.assert_allclose(res.similarity["cluster"]["positive"], 1.0)
    np.testing.assert_allclose(res.similarity["cluster"]["dislike"], 0.4)
    assert res.responsiveness["cluster"]["dislike"].mean == pytest.approx(-0.6)
    assert res.repeated == {"cluster": {}, "creator": {}}


def test_ci_width_shrinks_with_more_histories():
    rng = np.random.default_rng(0)
    a = rng.binomial(10, 0.3, 4000) / 10
    b = rng.binomial(10, 0.6, 4000) / 10
    widths = []
    for n in (50, 400, 4000):
        e = ratio_of_means_ci(a[:n], b[:n], resamples=1000, seed=0)
        assert e.ci_low <= e.mean <= e.ci_high
        widths.append(e.ci_high - e.ci_low)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]
    # about 1/sqrt(n): 4000 vs 400 histories shrinks the interval ~3.2x
    assert 2.0 < widths[1] / widths[2] < 5.0
    big = ratio_of_means_ci(a, b)
    assert big.mean == pytest.approx(a.mean() / b.mean() - 1) and big.excludes_zero()


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
        res = responsiveness(model, NTR, histories_ending_before(branched, seed=n), branched, META,
                             actions=("dislike",), repeated=(), bootstrap=500)
        e = res.responsiveness["cluster"]["dislike"]
        expected = keep[branched].mean() / 10 - 1
        assert e.mean == pytest.approx(expected)
        widths.append(e.ci_high - e.ci_low)
    assert widths[0] > 3 * widths[1] > 0


def test_ratio_of_means_ci_edge_cases():
    e = ratio_of_means_ci(np.array([0.5, 0.5]), np.zeros(2))
    assert math.isnan(e.mean)  # undefined: no similar items in the positive branch
    e = ratio_of_means_ci(np.array([]), np.array([]))
    assert math.isnan(e.mean) and e.n == 0
    e = ratio_of_means_ci(np.array([1.0, 0.0]), np.array([1.0, 1.0]), resamples=0)
    assert e.mean == -0.5 and math.isnan(e.ci_low)


def test_responsiveness_rejects_bad_arguments():
    model = ScoreTableModel(same_cluster_table())
    h = histories_ending_before(np.array([0, 1]))
    with pytest.raises(ValueError, match="2 histories but 3 branched items"):
        responsiveness(model, NTR, h, np.array([0, 1, 2]), META)
    with pytest.raises(ValueError, match="no histories"):
        responsiveness(model, NTR, [], np.array([], dtype=np.int64), META)
    with pytest.raises(ValueError, match="compared with the positive branch"):
        responsiveness(model, NTR, h, np.array([0, 1]), META, actions=("positive",))


def test_log_histories_branch_on_the_models_top1():
    model = ScoreTableModel(same_cluster_table())
    users = [0, 0, 0, 1, 1]
    items = [0, 25, 41, 60, 3]
    log = EventLog.from_events(users, items, np.arange(5), [1, 1, 1, 1, 1], item_meta=META)
    hist, branched, u = log_histories(model, NTR, log)
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
    hist, branched, state = simulated_histories(model, NTR, sim, num_users=30, steps=6, seed=1)
    assert len(hist) == 30 and all(len(h[0]) == 6 == len(set(h[0])) for h in hist)
    assert all(set(f) <= {1, 2, 3, 4} for _, f in hist)
    assert all(b not in h[0] for b, h in zip(branched, hist))
    assert state.seen.sum() == 30 * 6
    again, b2, _ = simulated_histories(model, NTR, sim, num_users=30, steps=6, seed=1)
    assert again == hist and np.array_equal(branched, b2)


def test_closed_loop_rates_are_consistent_and_paired():
    sim = Simulator(SIM, seed=0)
    model = ScoreTableModel(torch.rand(SIM.num_items + 1, SIM.num_items,
                                       generator=torch.Generator().manual_seed(0)))
    res = closed_loop(model, NTR, sim, num_users=40, steps=8, seed=2, bootstrap=200)
    r = {k: v.mean for k, v in res.rates.items()}
    assert r["positive_rate"] + r["neutral_rate"] + r["skip_rate"] + r["dislike_rate"] == pytest.approx(1.0)
    assert r["repeated_dislike_cluster_rate"] <= r["dislike_rate"]
    assert r["repeated_dislike_creator_rate"] <= r["dislike_rate"]
    for k, e in res.rates.items():
        assert e.ci_low <= e.mean <= e.ci_high, k
        assert len(res.per_step[k]) == 8 and len(res.per_user[k]) == 40
    d = res.to_dict()
    assert d["rates"]["dislike_rate"]["mean"] == r["dislike_rate"]
    same = closed_loop(model, NTR, sim, num_users=40, steps=8, seed=2, bootstrap=200)
    np.testing.assert_array_equal(same.per_user["dislike_rate"], res.per_user["dislike_rate"])
    e = paired_relative_change(res.per_user["dislike_rate"], same.per_user["dislike_rate"])
    assert e.mean == 0.0


class RecordingModel(ScoreTableModel):
    """Remembers the (items, feedback) tensors of its first encode call."""

    first: tuple[torch.Tensor, torch.Tensor] | None = None

    def encode(self, items, feedback, mask):
        if self.first is None:
            self.first = (items.clone(), feedback.clone())
        return super().encode(items, feedback, mask)


def test_closed_loop_users_start_from_logged_histories():
    sim = Simulator(SIM, seed=0)
    table = torch.rand(SIM.num_items + 1, SIM.num_items, generator=torch.Generator().manual_seed(0))
    model = RecordingModel(table, max_len=20)
    res = closed_loop(model, NTR, sim, num_users=40, steps=6, seed=2, warmup_events=5, bootstrap=50)
    assert res.warmup_events == 5 and res.to_dict()["warmup_events"] == 5
    assert all(len(v) == 6 for v in res.per_step.values())  # rates cover the model's steps only
    # the model's first slate is computed from the users' warm-up events, made as the
    # simulator makes its logs (same users, same population seed)
    fresh = Simulator(SIM, seed=0)
    log, _ = fresh.generate(40, 5, seed=2, state=fresh.spawn_users(40, 2))
    items, feedback = model.first
    for u in range(40):
        it, fb = log.user_events(u)
        assert items[u, -5:].tolist() == it.tolist() and (items[u, :-5] == SIM.num_items).all()
        assert feedback[u, -5:].tolist() == fb.tolist()
    cold = RecordingModel(table, max_len=20)
    closed_loop(cold, NTR, sim, num_users=40, steps=6, seed=2, warmup_events=0, bootstrap=50)
    assert (cold.first[0] == SIM.num_items).all()  # cold start: empty histories


def test_closed_loop_counts_warm_up_dislikes_as_already_disliked():
    # every item of the world is hated (very low affinity): nearly everything is disliked, so a
    # dislike in the loop's first step repeats a warm-up dislike's cluster whenever the warm-up
    # disliked that cluster; without a warm-up nothing can repeat at the first step
    cfg = SimConfig(num_users=20, events_per_user=10, num_items=400, num_creators=8, num_clusters=2,
                    loved_clusters=0, hated_clusters=2, hated_penalty=20.0)
    sim = Simulator(cfg, seed=0)
    model = ScoreTableModel(torch.rand(401, 400, generator=torch.Generator().manual_seed(1)))
    warm = closed_loop(model, NTR, sim, num_users=30, steps=3, seed=5, warmup_events=10, bootstrap=50)
    cold = closed_loop(model, NTR, sim, num_users=30, steps=3, seed=5, warmup_events=0, bootstrap=50)
    assert warm.per_step["dislike_rate"][0] > 0.9
    assert warm.per_step["repeated_dislike_cluster_rate"][0] > 0.9
    assert cold.per_step["repeated_dislike_cluster_rate"][0] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(warmup_events=-1), "warmup_events must be an integer >= 0"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(slate_size=0), "slate_size must be an integer >= 1"),
    (dict(warmup_events=390, steps=20), "cannot exceed the simulator's 400 items"),
])
def test_closed_loop_rejects_bad_sizes(kwargs, message):
    sim = Simulator(SIM, seed=0)
    model = ScoreTableModel(torch.rand(SIM.num_items + 1, SIM.num_items))
    args = dict(num_users=5, steps=3, seed=0, bootstrap=10) | kwargs
    with pytest.raises(ValueError, match=message):
        closed_loop(model, NTR, sim, **args)
