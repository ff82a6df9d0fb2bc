"""The ground-truth simulator: determinism, behaviour statistics, step-by-step use."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.data import Feedback
from negrec.sim import SimConfig, Simulator

SMALL = SimConfig(num_users=400, events_per_user=40)


def test_deterministic_by_seed():
    a, _ = Simulator(SMALL, seed=3).generate(seed=1)
    b, _ = Simulator(SMALL, seed=3).generate(seed=1)
    c, _ = Simulator(SMALL, seed=3).generate(seed=2)
    d, _ = Simulator(SMALL, seed=4).generate(seed=1)
    for name in ("items", "feedback", "timestamps", "strength"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.items, c.items)
    assert not np.array_equal(a.item_meta.cluster, d.item_meta.cluster)


def test_log_shape_metadata_and_no_repeats():
    sim = Simulator(SMALL, seed=0)
    log, state = sim.generate()
    assert log.num_users == 400 and np.all(log.lengths() == 40)
    assert log.item_meta.has_creators
    # an item's cluster is its creator's cluster
    np.testing.assert_array_equal(log.item_meta.cluster, sim.creator_cluster[log.item_meta.creator])
    items = log.items.reshape(400, 40)
    assert all(len(set(row)) == 40 for row in items)
    assert state.seen.sum() == log.num_events


def test_hated_clusters_get_the_dislikes():
    sim = Simulator(SimConfig(num_users=1500, events_per_user=60), seed=0)
    log, state = sim.generate()
    u = np.repeat(np.arange(1500), 60)
    long_run = state.long_run[u, sim.item_cluster[log.items]]
    hated = long_run < -1.5
    loved = long_run > 1.2
    dis = log.feedback == Feedback.DISLIKE
    pos = log.feedback == Feedback.POSITIVE
    assert dis[hated].mean() > 10 * dis[loved].mean()
    # satiation and aversion (negrec.sim) make even loved clusters disliked now and then
    assert pos[loved].mean() > 0.55 and pos[hated].mean() < 0.02
    # hated creators too, whatever the cluster
    hated_creator = (state.hated_creators[u] == sim.item_creator[log.items][:, None]).any(1)
    assert dis[hated_creator & ~hated].mean() > 3 * dis[~hated_creator & ~hated].mean()
    # organic browsing favours loved clusters
    organic = sim.last_organic.ravel()
    assert loved[organic].mean() > 1.3 * loved[~organic].mean()
    # plausible overall rates (documented in negrec.sim.simulator)
    counts = log.feedback_counts()
    rates = {k: v / log.num_events for k, v in counts.items()}
    assert 0.35 < rates["positive"] < 0.48 and 0.10 < rates["dislike"] < 0.18
    assert 0.20 < rates["skip"] < 0.32


def test_respond_follows_the_behaviour_model():
    sim = Simulator(SMALL, seed=1)
    state = sim.spawn_users(1, seed=0)
    item = int(np.argmax(sim.affinity(state, np.zeros(SMALL.num_items, int), np.arange(SMALL.num_items))))
    probs = sim.response_probabilities(state, np.array([0]), np.array([item]))[0]
    assert probs.sum() == pytest.approx(1.0) and probs[0] > 0.9
    # many independent users with identical tastes: empirical frequencies match
    n = 20000
    many = sim.spawn_users(n, seed=0)
    for name in ("long_run", "affinity", "style", "hated_creators"):
        getattr(many, name)[:] = getattr(state, name)[0]
    rng = np.random.default_rng(0)
    worst = int(np.argmin(sim.affinity(state, np.zeros(SMALL.num_items, int), np.arange(SMALL.num_items))))
    p = sim.response_probabilities(state, np.array([0]), np.array([worst]))[0]
    codes = sim.respond(many, np.arange(n), np.full(n, worst), rng)
    freq = np.array([(codes == f).mean() for f in (1, 2, 3, 4)])
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9)
    assert many.seen[:, worst].all()


def test_given_recommender_drives_the_exposures():
    sim = Simulator(SMALL, seed=2)

    def always_cluster0(users, state, rng):
        pool = np.flatnonzero(sim.item_cluster == 0)
        out = np.empty(len(users), dtype=np.int64)
        for k, u in enumerate(users):
            unseen = pool[~state.seen[u, pool]]
            out[k] = unseen[0] if len(unseen) else sim.random_unseen(state, np.array([u]), rng)[0]
        return out

    log, _ = sim.generate(num_users=50, events_per_user=20, recommender=always_cluster0)
    exposed = ~sim.last_organic.ravel()
    assert (sim.item_cluster[log.items][exposed] == 0).mean() > 0.9


def test_config_validation():
    with pytest.raises(ValueError, match="loved_clusters \\+ hated_clusters must be <= num_clusters"):
        SimConfig(num_clusters=3, loved_clusters=2, hated_clusters=2)
    with pytest.raises(ValueError, match=r"events_per_user must be in \(0, num_items\]"):
        SimConfig(num_items=30, num_creators=20)
    sim = Simulator(SimConfig(num_items=30, num_creators=20, events_per_user=10), seed=0)
    with pytest.raises(ValueError, match="cannot exceed num_items"):
        sim.generate(events_per_user=31)


def test_a_dislike_predicts_dislikes_of_its_cluster():
    # the aversion after a bad experience (negrec.sim): after a dislike of an item of a loved
    # cluster, the user's next item of that cluster is far more often disliked than after a like
    # (documented for the default log: 85% vs 4% when it comes right next, 49% vs 2% whenever)
    sim = Simulator(SimConfig(num_users=800, events_per_user=60), seed=0)
    log, state = sim.generate()
    later = {Feedback.DISLIKE: [], Feedback.POSITIVE: []}
    right_next = {Feedback.DISLIKE: [], Feedback.POSITIVE: []}
    for u in range(log.num_users):
        items, fb = log.user_events(u)
        clusters = sim.item_cluster[items]
        for t in range(len(items) - 1):
            if fb[t] not in later or state.long_run[u, clusters[t]] <= 1.2:
                continue
            nxt = np.flatnonzero(clusters[t + 1:] == clusters[t])
            if len(nxt):
                later[fb[t]].append(fb[t + 1 + nxt[0]] == Feedback.DISLIKE)
                if nxt[0] == 0:
                    right_next[fb[t]].append(fb[t + 1] == Feedback.DISLIKE)
    assert len(right_next[Feedback.DISLIKE]) > 200
    assert np.mean(right_next[Feedback.DISLIKE]) > 0.75 and np.mean(right_next[Feedback.POSITIVE]) < 0.08
    assert np.mean(later[Feedback.DISLIKE]) > 0.4 and np.mean(later[Feedback.POSITIVE]) < 0.04


def test_affinity_parts_name_each_mechanism_and_sum_to_the_affinity():
    """Each term of affinity_parts moves with its own mechanism only, and affinity is their
    sum (what docs/generalization_screening.md's analysis of held-out dislikes relies on)."""
    config = SimConfig(num_users=1, events_per_user=5, hated_creators=3, num_clusters=6,
                       num_creators=30, num_items=120)
    sim = Simulator(config, seed=2)
    state = sim.spawn_users(1, seed=0)
    users, items = np.zeros(config.num_items, int), np.arange(config.num_items)
    before = sim.affinity_parts(state, users, items)
    assert set(before) == {"cluster_taste", "satiation", "cluster_aversion", "creator_aversion",
                           "creator_style", "hated_creator", "quality"}
    hated = np.isin(sim.item_creator, state.hated_creators[0])
    assert hated.any() and not hated.all()
    np.testing.assert_array_equal(before["hated_creator"], np.where(hated, -config.hated_creator_penalty, 0.0))
    np.testing.assert_array_equal(before["quality"], sim.item_quality)
    np.testing.assert_array_equal(before["cluster_taste"], state.long_run[0, sim.item_cluster])
    for name in ("satiation", "cluster_aversion", "creator_aversion"):
        assert not before[name].any()
    # one item disliked: its cluster's satiation and aversion, and its creator's aversion, only
    item = int(np.flatnonzero(~hated)[0])
    state.affinity[0] = state.long_run[0]
    sim._drift = lambda *args: None  # keep the taste still, so only the named terms move
    rng = np.random.default_rng(0)
    original = sim.response_probabilities
    sim.response_probabilities = lambda *a: np.array([[0.0, 0.0, 0.0, 1.0]])  # a dislike
    assert sim.respond(state, np.array([0]), np.array([item]), rng)[0] == Feedback.DISLIKE
    sim.response_probabilities = original
    after = sim.affinity_parts(state, users, items)
    same_cluster = sim.item_cluster == sim.item_cluster[item]
    same_creator = sim.item_creator == sim.item_creator[item]
    np.testing.assert_allclose(after["satiation"], np.where(same_cluster, -config.satiation_strength, 0.0))
    np.testing.assert_allclose(after["cluster_aversion"], np.where(same_cluster, -config.dislike_aversion, 0.0))
    np.testing.assert_allclose(after["creator_aversion"], np.where(same_creator, -config.dislike_aversion, 0.0))
    for name in ("cluster_taste", "creator_style", "hated_creator", "quality"):
        np.testing.assert_array_equal(after[name], before[name])
    total = sum(after.values())
    np.testing.assert_allclose(sim.affinity(state, users, items), total, rtol=0, atol=1e-12)
