"""The training loss of a batch: softmax rows and not-to-recommend rows, each against their
candidates; a sampled softmax computes only the rows of its targets and candidates, with the
losses and gradients of gathering them from the whole item table (bit for bit)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import one_model_objective
from negrec.data import Collator, leave_one_out
from negrec.data.samplers import UniformSampler, make_sampler
from negrec.models.config import ModelConfig
from negrec.models.registry import build_model
from negrec.ops import fused_loss, fused_loss_reference
from negrec.sim import SimConfig, Simulator, preset
from negrec.train.config import LossConfig
from negrec.train.loss import batch_loss


@pytest.fixture(scope="module")
def setup():
    log, _ = Simulator(preset("default", num_users=80, events_per_user=20), seed=0).generate()
    train = leave_one_out(log).train
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gru", dim=16, max_len=12, dropout=0.0), log.num_items)
    return train, model


def _batch(train, ntr_k: int, seed: int = 0):
    collator = Collator(train, one_model_objective().collate_config(12),
                        ntr_sampler=UniformSampler(train.num_items, ntr_k) if ntr_k else None,
                        generator=torch.Generator().manual_seed(seed))
    return collator(np.arange(min(64, train.num_users)))


def test_ntr_rows_score_against_their_own_uniform_candidates(setup):
    train, model = setup
    batch = _batch(train, 32)
    assert batch.ntr_neg_ids is not None and batch.ntr_neg_ids.shape == (32,)
    assert int((batch.target_labels == -1).sum()) > 0 and int((batch.target_labels == 1).sum()) > 0
    parts = batch_loss(model, batch, LossConfig(mode="full"))
    # the specification: positives against every item; NTR rows against the 32 drawn items,
    # without logQ correction
    states = model.encode(batch.input_items, batch.input_feedback, batch.mask)
    table = model.item_table()
    pos, neg = batch.target_labels == 1, batch.target_labels == -1
    want = fused_loss_reference(
        states[pos], table[batch.target_items[pos]], table,
        target_ids=batch.target_items[pos], neg_ids=torch.arange(train.num_items),
        label=batch.target_labels[pos], weight=batch.target_weights[pos], reduction="sum")
    want = want + fused_loss_reference(
        states[neg], table[batch.target_items[neg]], table[batch.ntr_neg_ids],
        target_ids=batch.target_items[neg], neg_ids=batch.ntr_neg_ids,
        label=batch.target_labels[neg], weight=batch.target_weights[neg], reduction="sum")
    torch.testing.assert_close(parts.total, want, rtol=1e-5, atol=1e-4)
    sel = batch.target_labels != 0
    assert parts.targets == int(sel.sum())
    torch.testing.assert_close(parts.weight, batch.target_weights[sel].sum())


def test_without_own_candidates_every_row_shares_the_softmax_candidates(setup):
    train, model = setup
    batch = _batch(train, 0)
    assert batch.ntr_neg_ids is None
    parts = batch_loss(model, batch, LossConfig(mode="full", ntr_negatives=0))
    sel = batch.target_labels != 0
    states = model.encode(batch.input_items, batch.input_feedback, batch.mask)
    table = model.item_table()
    want = fused_loss_reference(
        states[sel], table[batch.target_items[sel]], table, target_ids=batch.target_items[sel],
        neg_ids=torch.arange(train.num_items), label=batch.target_labels[sel],
        weight=batch.target_weights[sel], reduction="sum")
    torch.testing.assert_close(parts.total, want, rtol=1e-5, atol=1e-4)


def test_own_candidates_are_drawn_from_the_data_generator():
    # reproducible from the trainer's data generator (so that a resumed run draws the same)
    log, _ = Simulator(preset("default", num_users=30, events_per_user=15), seed=0).generate()
    a, b = _batch(log, 16, seed=3), _batch(log, 16, seed=3)
    assert torch.equal(a.ntr_neg_ids, b.ntr_neg_ids)
    assert not torch.equal(a.ntr_neg_ids, _batch(log, 16, seed=4).ntr_neg_ids)


@pytest.mark.parametrize("num_items", [1_000, 100_000])
def test_the_ntr_pull_keeps_its_scale_as_the_catalogue_grows(num_items):
    # The NTR term's gradient on the disliked item's logit is w * p. For an item that scores
    # one unit above typical items, p over the full softmax is about e / V: it vanishes with the
    # catalogue. Against K' uniform candidates it is about e / K' whatever V is.
    torch.manual_seed(0)
    d, rows, k = 8, 16, 128
    items = torch.randn(num_items, d) / math.sqrt(d)
    query = torch.randn(rows, d)
    query = query / query.norm(dim=1, keepdim=True)
    target_ids = torch.arange(rows)
    target_emb = query.clone()  # <q, t> = 1 for unit queries
    label = -torch.ones(rows, dtype=torch.long)

    def pull(neg_ids):
        t = target_emb.clone().requires_grad_(True)
        loss = fused_loss_reference(query, t, items[neg_ids], target_ids=target_ids,
                                    neg_ids=neg_ids, label=label, reduction="sum")
        loss.backward()
        return float((t.grad * query).sum(1).mean())  # d loss / d z0, averaged over rows

    full = pull(torch.arange(num_items))
    own = pull(torch.randint(0, num_items, (k,), generator=torch.Generator().manual_seed(0)))
    assert full == pytest.approx(math.e / num_items, rel=0.3)
    assert own == pytest.approx(math.e / (k + math.e), rel=0.3)


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_the_ntr_candidates_are_a_reference_the_term_does_not_train(setup, mode):
    # the NTR term ranks the disliked item against its K' candidates; by default only the
    # disliked items' rows (and the states) get its gradient, never the candidates' rows
    train, _ = setup
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gru", dim=16, max_len=12, dropout=0.0, tied=False),
                        train.num_items)
    collator = Collator(train, one_model_objective().collate_config(12),
                        sampler=make_sampler("uniform", num_items=train.num_items, num_negatives=64),
                        ntr_sampler=UniformSampler(train.num_items, 32),
                        generator=torch.Generator().manual_seed(0))
    batch = collator(np.arange(min(64, train.num_users)))
    # the NTR rows alone: the softmax term's own rows would touch every candidate
    batch = dataclasses.replace(batch, target_labels=batch.target_labels.clamp(max=0))
    ntr_targets = set(batch.target_items[batch.target_labels == -1].tolist())
    others = [i for i in batch.ntr_neg_ids.unique().tolist() if i not in ntr_targets]
    assert others, "no candidate outside the NTR targets: change the seed"
    losses = {}
    for trains in (False, True):
        model.zero_grad()
        parts = batch_loss(model, batch, LossConfig(mode=mode, ntr_negatives=32,
                                                    ntr_trains_candidates=trains))
        parts.total.backward()
        grad = model.output.weight.grad
        losses[trains] = parts.total.detach()
        moved = grad[others].abs().sum(dim=1) > 0
        assert bool(moved.all()) if trains else not bool(moved.any())
        assert bool((grad[sorted(ntr_targets)].abs().sum(dim=1) > 0).all())
    torch.testing.assert_close(losses[False], losses[True])  # the same value either way


# ---- a sampled softmax without the whole item table ----------------------------------------

SIM = SimConfig(num_items=300, num_clusters=8, num_creators=40, num_users=80, events_per_user=30)


@pytest.fixture(scope="module")
def sim_log():
    return Simulator(SIM, seed=0).generate()[0]


def _sampled_batch(log, sampler_kind: str, ntr_k: int):
    sampler = make_sampler(sampler_kind, num_items=log.num_items, num_negatives=128,
                           counts=log.item_counts())
    collator = Collator(log, one_model_objective().collate_config(20), sampler=sampler,
                        ntr_sampler=UniformSampler(log.num_items, ntr_k) if ntr_k else None,
                        generator=torch.Generator().manual_seed(0))
    return collator(np.arange(64))


def _table_loss(model, batch, config: LossConfig):
    """The sampled loss computed from the whole [V, D] item table (what batch_loss did before
    it computed only the rows it needs): the softmax rows against the sampled candidates with
    logQ, and the NTR rows against their own candidates when the batch has them."""
    states = model.encode(batch.input_items, batch.input_feedback, batch.mask)
    table = model.item_table()
    labels = batch.target_labels
    own = batch.ntr_neg_ids is not None
    soft = labels == 1 if own else labels != 0
    neg_emb = F.embedding(batch.neg_ids, table)
    total = fused_loss(states[soft], F.embedding(batch.target_items[soft], table), neg_emb,
                       target_ids=batch.target_items[soft], neg_ids=batch.neg_ids,
                       label=labels[soft], weight=batch.target_weights[soft],
                       target_logq=batch.target_logq[soft], neg_logq=batch.neg_logq,
                       temperature=config.temperature, reduction="sum")
    if own:
        ntr = labels == -1
        ntr_emb = F.embedding(batch.ntr_neg_ids, table)
        if not config.ntr_trains_candidates:  # a reference the term does not train
            ntr_emb = ntr_emb.detach()
        total = total + fused_loss(
            states[ntr], F.embedding(batch.target_items[ntr], table), ntr_emb,
            target_ids=batch.target_items[ntr], neg_ids=batch.ntr_neg_ids, label=labels[ntr],
            weight=batch.target_weights[ntr], temperature=config.temperature, reduction="sum")
    return total


def _gradients(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["sasrec", "gru"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("mode", ["sampled", "in_batch"])
@pytest.mark.parametrize("ntr_k", [0, 32])
def test_sampled_loss_needs_only_the_rows_of_targets_and_candidates(sim_log, kind, tied, mode,
                                                                    ntr_k, monkeypatch):
    """Building the [V, D] table every step made a sampled softmax cost O(V) per step (a
    1M-item catalogue trained at 0.08x the targets/s of a 10k one); the loss now never asks
    for it, and gives the same loss and gradients bit for bit, with or without the NTR rows'
    own candidates."""
    log = sim_log
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, dim=16, num_layers=1, num_heads=2, dropout=0.0,
                                    max_len=20, cluster_input=True, creator_input=True,
                                    tied=tied), log.num_items, item_cluster=log.item_meta.cluster,
                        item_creator=log.item_meta.creator)
    with torch.no_grad():  # feedback codes start at zero; give them values so they matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    batch = _sampled_batch(log, "popularity" if mode == "sampled" else "in_batch", ntr_k)
    assert (batch.ntr_neg_ids is not None) == bool(ntr_k)
    config = LossConfig(mode=mode, ntr_negatives=ntr_k)
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


def test_full_softmax_still_scores_the_whole_table(sim_log):
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=16, num_layers=1, max_len=20), sim_log.num_items)
    batch = _batch(sim_log, 16)
    calls = []
    real = model.item_table

    def counted():
        calls.append(1)
        return real()

    model.item_table = counted
    batch_loss(model, batch, LossConfig(mode="full"))
    assert calls == [1]
