"""Closed-loop simulation on hand-built toy models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negrec.eval.closed_loop import closed_loop
from negrec.eval.recommender import from_model
from negrec.eval.stats import ratio_of_means_ci
from negrec.train.objectives import OBJECTIVES
from negrec.sim import SimConfig, Simulator
from toy_models import ScoreTableModel

NTR = OBJECTIVES["input_ntr"].inputs  # what an input_ntr model sees
SIM = SimConfig(num_users=50, events_per_user=10, num_items=400, num_creators=80, num_clusters=8)


def test_closed_loop_rates_are_consistent_and_paired():
    sim = Simulator(SIM, seed=0)
    model = ScoreTableModel(torch.rand(SIM.num_items + 1, SIM.num_items,
                                       generator=torch.Generator().manual_seed(0)))
    res = closed_loop(from_model(model, NTR), sim, num_users=40, steps=8, seed=2, bootstrap=200)
    r = {k: v.mean for k, v in res.rates.items()}
    assert r["positive_rate"] + r["neutral_rate"] + r["skip_rate"] + r["dislike_rate"] == pytest.approx(1.0)
    assert r["repeated_dislike_cluster_rate"] <= r["dislike_rate"]
    assert r["repeated_dislike_creator_rate"] <= r["dislike_rate"]
    for k, e in res.rates.items():
        assert e.ci_low <= e.mean <= e.ci_high, k
        assert len(res.per_step[k]) == 8 and len(res.per_user[k]) == 40
    d = res.to_dict()
    assert d["rates"]["dislike_rate"]["mean"] == r["dislike_rate"]
    same = closed_loop(from_model(model, NTR), sim, num_users=40, steps=8, seed=2, bootstrap=200)
    np.testing.assert_array_equal(same.per_user["dislike_rate"], res.per_user["dislike_rate"])
    e = ratio_of_means_ci(res.per_user["dislike_rate"], same.per_user["dislike_rate"])
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
    res = closed_loop(from_model(model, NTR), sim, num_users=40, steps=6, seed=2, warmup_events=5, bootstrap=50)
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
    closed_loop(from_model(cold, NTR), sim, num_users=40, steps=6, seed=2, warmup_events=0, bootstrap=50)
    assert (cold.first[0] == SIM.num_items).all()  # cold start: empty histories


def test_closed_loop_counts_warm_up_dislikes_as_already_disliked():
    # every item of the world is hated (very low affinity): nearly everything is disliked, so a
    # dislike in the loop's first step repeats a warm-up dislike's cluster whenever the warm-up
    # disliked that cluster; without a warm-up nothing can repeat at the first step
    cfg = SimConfig(num_users=20, events_per_user=10, num_items=400, num_creators=8, num_clusters=2,
                    loved_clusters=0, hated_clusters=2, hated_penalty=20.0)
    sim = Simulator(cfg, seed=0)
    model = ScoreTableModel(torch.rand(401, 400, generator=torch.Generator().manual_seed(1)))
    warm = closed_loop(from_model(model, NTR), sim, num_users=30, steps=3, seed=5, warmup_events=10, bootstrap=50)
    cold = closed_loop(from_model(model, NTR), sim, num_users=30, steps=3, seed=5, warmup_events=0, bootstrap=50)
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
        closed_loop(from_model(model, NTR), sim, **args)
