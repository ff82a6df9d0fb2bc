"""Dislike and skip targets reach the NTR term on every data path (movielens, csv with labels
or ratings, parquet, a saved log, the simulator): the outside report of issue 18 found
input_ntr and input_only with identical metrics on a generic CSV log."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from helpers import one_model_objective
from negrec.data import Collator, Feedback
from negrec.experiments.data import load_data
from negrec.models.config import ModelConfig
from negrec.models.registry import build_model
from negrec.sim import Simulator, preset
from negrec.train.config import LossConfig
from negrec.train.data_spec import DataSpec
from negrec.train.loss import batch_loss

LABELS = {Feedback.POSITIVE: "like", Feedback.NEUTRAL: "view", Feedback.SKIP: "skip",
          Feedback.DISLIKE: "hate"}


@pytest.fixture(scope="module")
def sim_log():
    log, _ = Simulator(preset("default", num_users=60, events_per_user=25), seed=0).generate()
    return log


def _write_tables(log, folder):
    events = folder / "events.csv"
    with events.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "iid", "ts", "action", "stars"])
        stars = {Feedback.POSITIVE: 5, Feedback.NEUTRAL: 3, Feedback.SKIP: 3, Feedback.DISLIKE: 1}
        for u in range(log.num_users):
            s = log.user_slice(u)
            for i, t, fb in zip(log.items[s], log.timestamps[s], log.feedback[s]):
                w.writerow([f"u{u}", f"i{i}", int(t), LABELS[Feedback(int(fb))], stars[Feedback(int(fb))]])
    items = folder / "items.csv"
    with items.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "category", "creator"])
        for i in range(log.num_items):
            w.writerow([f"i{i}", f"c{log.item_meta.cluster[i]}", f"r{log.item_meta.creator[i]}"])
    return events, items


def _specs(sim_log, tmp_path, ml100k):
    events, items = _write_tables(sim_log, tmp_path)
    fmap = {v: k.label for k, v in LABELS.items()}
    table = dict(path=str(events), user_col="uid", item_col="iid", time_col="ts",
                 items_path=str(items), item_creator_col="creator")
    specs = {
        "simulated": DataSpec(source="simulated", sim=preset("default", num_users=60,
                                                             events_per_user=25)),
        "csv-labels": DataSpec(source="csv", feedback_col="action", feedback_map=fmap, **table),
        "csv-ratings": DataSpec(source="csv", rating_col="stars", **table),
        "npz": DataSpec(source="npz", path=str(sim_log.save(tmp_path / "log.npz"))),
    }
    import pyarrow.csv as pacsv  # a required dependency (the loaders read through it)
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(events), tmp_path / "events.parquet")
    specs["parquet"] = DataSpec(source="parquet", feedback_col="action", feedback_map=fmap,
                                **{**table, "path": str(tmp_path / "events.parquet")})
    if ml100k is not None:
        specs["movielens"] = DataSpec(source="movielens", path=str(ml100k))
    return specs


@pytest.mark.parametrize("source", ["simulated", "csv-labels", "csv-ratings", "npz", "parquet",
                                    "movielens"])
def test_negative_targets_reach_the_ntr_term(source, sim_log, tmp_path, request):
    ml100k = request.getfixturevalue("ml100k_dir") if source == "movielens" else None
    specs = _specs(sim_log, tmp_path, ml100k)
    log = load_data(specs[source])
    assert log.feedback_counts()["dislike"] > 0, source
    users = np.arange(min(log.num_users, 64))
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=16, num_layers=1, max_len=20), log.num_items)
    losses = {}
    for name in ("input_only", "input_ntr"):
        objective = one_model_objective(name)
        batch = Collator(log, objective.collate_config(20))(users)
        negatives = int((batch.target_labels == -1).sum())
        if name == "input_ntr":
            assert negatives > 0, f"{source}: no dislike/skip target reached the loss"
        else:
            assert negatives == 0
        parts = batch_loss(model, batch, LossConfig(mode="full"))
        losses[name] = (parts.total / parts.weight).item()
    assert losses["input_ntr"] != pytest.approx(losses["input_only"], rel=1e-3), source
