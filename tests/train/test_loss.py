"""The training loss of a batch: softmax rows and not-to-recommend rows, each against their
candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from negrec.data import Collator, leave_one_out
from negrec.data.samplers import UniformSampler
from negrec.models.config import ModelConfig
from negrec.models.registry import build_model
from negrec.ops import fused_loss_reference
from negrec.sim import Simulator, preset
from negrec.train.config import LossConfig
from negrec.train.loss import batch_loss
from negrec.train.objectives import get_objective


@pytest.fixture(scope="module")
def setup():
    log, _ = Simulator(preset("default", num_users=80, events_per_user=20), seed=0).generate()
    train = leave_one_out(log).train
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gru", dim=16, max_len=12, dropout=0.0), log.num_items)
    return train, model


def _batch(train, ntr_k: int, seed: int = 0):
    collator = Collator(train, get_objective("input_ntr").collate_config(12),
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
