"""measure(): the one measurement of responsiveness that negrec demo and negrec responsiveness
share (counterfactual branching, and the closed loop on simulated data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from negrec.eval.closed_loop import closed_loop
from negrec.eval.counterfactual import responsiveness, simulated_histories
from negrec.eval.recommender import from_checkpoint
from negrec.experiments.measure import (HISTORY_SEED_OFFSET, LOOP_SEED_OFFSET, MeasureSizes,
                                        measure, world_of)
from negrec.sim import SimConfig, Simulator
from negrec.train.checkpoint import LoadedCheckpoint
from negrec.train.data_spec import DataSpec
from negrec.train.objectives import Objective
from toy_models import ScoreTableModel

SIM = SimConfig(num_users=50, events_per_user=10, num_items=300, num_creators=60, num_clusters=6)


def toy_checkpoint(sim: Simulator) -> LoadedCheckpoint:
    model = ScoreTableModel(torch.rand(SIM.num_items + 1, SIM.num_items,
                                       generator=torch.Generator().manual_seed(0)), max_len=20)
    return LoadedCheckpoint(model=model, objective=Objective("input_ntr"), item_meta=sim.item_meta(),
                            user_ids=np.arange(3), config={}, train_state=None, path=Path("toy"))


def test_measure_on_a_simulator_is_the_counterfactuals_and_the_closed_loop():
    sim = Simulator(SIM, seed=0)
    ck = toy_checkpoint(sim)
    sizes = MeasureSizes(histories=20, steps=4, loop_users=15, loop_steps=3, loop_warmup=2,
                         bootstrap=30, seed=5)
    result = measure(ck, sizes, sim)
    hist, branched, _ = simulated_histories(from_checkpoint(ck), sim, num_users=20, steps=4,
                                            seed=HISTORY_SEED_OFFSET + 5)
    resp = responsiveness(from_checkpoint(ck), hist, branched, ck.item_meta, bootstrap=30, seed=5)
    loop = closed_loop(from_checkpoint(ck), sim, num_users=15, steps=3, seed=LOOP_SEED_OFFSET + 5,
                       warmup_events=2, bootstrap=30)
    assert result.entry["responsiveness"] == resp.to_dict()["responsiveness"]
    assert result.entry["closed_loop"] == loop.to_dict()
    assert result.entry["num_histories"] == 20 and "clusters" not in result.entry
    np.testing.assert_array_equal(result.loop.per_user["dislike_rate"], loop.per_user["dislike_rate"])


def test_world_of_rebuilds_the_checkpoint_s_simulator():
    spec = DataSpec(source="simulated", sim=SIM, sim_seed=2)
    world = world_of(spec, SIM.num_items, "toy.pt")
    assert isinstance(world, Simulator) and world.seed == 2 and world.config == SIM
    with pytest.raises(ValueError, match="toy.pt: the checkpoint's simulator has 300 items but "
                                         "the model 299"):
        world_of(spec, 299, "toy.pt")


def test_an_action_absent_from_training_is_not_measured():
    # the outside report of issue 18: "skip responsiveness" on a log without skips came from a
    # skip code the model had never seen in training
    import dataclasses

    from negrec.experiments.measure import measurable_actions

    sim = Simulator(SIM, seed=0)
    ck = dataclasses.replace(toy_checkpoint(sim), train_feedback={
        "positive": 10, "neutral": 3, "skip": 0, "dislike": 4})
    assert measurable_actions(ck, ("dislike", "skip")) == (
        ["dislike"], {"skip": "n/a: no skip events in the training data"})
    sizes = MeasureSizes(histories=10, steps=2, loop_users=5, loop_steps=2, loop_warmup=1,
                         bootstrap=10)
    result = measure(ck, sizes, sim)
    assert set(result.entry["responsiveness"]["cluster"]) == {"dislike"}
    assert result.entry["not_measured"] == {"skip": "n/a: no skip events in the training data"}
    # a checkpoint that does not record its training events keeps every action
    assert measurable_actions(toy_checkpoint(sim), ("dislike", "skip"))[0] == ["dislike", "skip"]
    none = dataclasses.replace(ck, train_feedback={"positive": 1, "dislike": 0, "skip": 0})
    with pytest.raises(ValueError, match="none of the actions dislike, skip occurs"):
        measure(none, sizes, sim)
