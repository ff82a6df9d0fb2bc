"""The batch loss: a sampled softmax computes only the rows of its targets and candidates, with
the losses and gradients of gathering them from the whole item table (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from negrec.data import Collator
from negrec.data.samplers import make_sampler
from negrec.models import ModelConfig, build_model
from negrec.ops import fused_loss
from negrec.sim import SimConfig, Simulator
from negrec.train import LossConfig
from negrec.train.loss import batch_loss
from negrec.train.objectives import get_objective

SIM = SimConfig(num_items=300, num_clusters=8, num_creators=40, num_users=80, events_per_user=30)


@pytest.fixture(scope="module")
def log():
    return Simulator(SIM, seed=0).generate()[0]


def _batch(log, sampler_kind: str):
    sampler = make_sampler(sampler_kind, num_items=log.num_items, num_negatives=128,
                           counts=log.item_counts())
    collator = Collator(log, get_objective("input_ntr").collate_config(20), sampler=sampler,
                        generator=torch.Generator().manual_seed(0))
    return collator(np.arange(64))


def _table_loss(model, batch, config: LossConfig):
    """The sampled loss computed from the whole [V, D] item table (what batch_loss did before
    it computed only the rows it needs)."""
    states = model.encode(batch.input_items, batch.input_feedback, batch.mask)
    sel = batch.target_labels != 0
    table = model.item_table()
    return fused_loss(states[sel], F.embedding(batch.target_items[sel], table),
                      F.embedding(batch.neg_ids, table), target_ids=batch.target_items[sel],
                      neg_ids=batch.neg_ids, label=batch.target_labels[sel],
                      weight=batch.target_weights[sel], target_logq=batch.target_logq[sel],
                      neg_logq=batch.neg_logq, temperature=config.temperature, reduction="sum")


def _gradients(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["sasrec", "gru"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("mode", ["sampled", "in_batch"])
def test_sampled_loss_needs_only_the_rows_of_targets_and_candidates(log, kind, tied, mode,
                                                                    monkeypatch):
    """Building the [V, D] table every step made a sampled softmax cost O(V) per step (a
    1M-item catalogue trained at 0.08x the targets/s of a 10k one); the loss now never asks
    for it, and gives the same loss and gradients bit for bit."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, dim=16, num_layers=1, num_heads=2, dropout=0.0,
                                    max_len=20, cluster_input=True, creator_input=True,
                                    tied=tied), log.num_items, item_cluster=log.item_meta.cluster,
                        item_creator=log.item_meta.creator)
    batch = _batch(log, "popularity" if mode == "sampled" else "in_batch")
    config = LossConfig(mode=mode)
    want = _table_loss(model, batch, config)
    want_grads = _gradients(model, want)

    def no_table():
        raise AssertionError("the sampled loss built the whole item table")

    monkeypatch.setattr(model, "item_table", no_table)
    got = batch_loss(model, batch, config).total
    got_grads = _gradients(model, got)
    assert torch.equal(got, want.detach())
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        assert torch.equal(got_grads[name], want_grads[name]), name


def test_full_softmax_still_scores_the_whole_table(log):
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=16, num_layers=1, max_len=20), log.num_items)
    batch = Collator(log, get_objective("input_ntr").collate_config(20))(np.arange(16))
    calls = []
    real = model.item_table

    def counted():
        calls.append(1)
        return real()

    model.item_table = counted
    batch_loss(model, batch, LossConfig(mode="full"))
    assert calls == [1]
