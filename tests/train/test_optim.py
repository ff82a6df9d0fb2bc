"""The optimizer: LazyAdamW is AdamW on dense gradients and on the rows of sparse ones (bit for
bit), leaves the other rows alone; gradient clipping takes sparse gradients; ``auto`` picks the
row-table update by loss and catalogue size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from negrec.errors import UserError
from negrec.train import OptimConfig
from negrec.train.optim import (SPARSE_FROM_ITEMS, LazyAdamW, build_optimizer, clip_gradients,
                                embedding_update)

HYPER = dict(lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.05)


def _pair(make):
    """Two identical parameters built by ``make``."""
    torch.manual_seed(0)
    a = nn.Parameter(make())
    return a, nn.Parameter(a.detach().clone())


def test_lazy_adamw_on_dense_gradients_is_adamw_bit_for_bit():
    a, b = _pair(lambda: torch.randn(50, 8))
    ref, lazy = torch.optim.AdamW([a], **HYPER), LazyAdamW([b], **HYPER)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        grad = torch.randn(50, 8, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        ref.step()
        lazy.step()
        assert torch.equal(a, b)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(ref.state[a][key], lazy.state[b][key]), key


def test_lazy_adamw_on_sparse_gradients_of_every_row_is_adamw_bit_for_bit():
    """A table whose every row is in every step's gradient follows AdamW exactly (repeated
    rows are summed first, as a dense gradient sums them)."""
    a, b = _pair(lambda: torch.randn(30, 4))
    ref, lazy = torch.optim.AdamW([a], **HYPER), LazyAdamW([b], **HYPER)
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        rows = torch.cat([torch.randperm(30, generator=g),
                          torch.randint(0, 30, (20,), generator=g)])
        values = torch.randn(len(rows), 4, generator=g)
        a.grad = torch.zeros(30, 4).index_add_(0, rows, values)
        b.grad = torch.sparse_coo_tensor(rows[None], values, (30, 4), check_invariants=True)
        ref.step()
        lazy.step()
        assert torch.equal(a, b)


def test_lazy_adamw_leaves_rows_outside_the_gradient_alone():
    """Rows absent from a step keep their value and moments (AdamW would decay them and keep
    stepping along their momentum); present rows get AdamW's update."""
    a, b = _pair(lambda: torch.randn(10, 3))
    ref, lazy = torch.optim.AdamW([a], **HYPER), LazyAdamW([b], **HYPER)
    first = torch.tensor([1, 4, 7])
    values = torch.randn(3, 3)
    a.grad = torch.zeros(10, 3).index_add_(0, first, values)
    b.grad = torch.sparse_coo_tensor(first[None], values, (10, 3), check_invariants=True)
    ref.step()
    lazy.step()
    # step 2 touches row 4 only
    before = b.detach().clone()
    moments = {k: lazy.state[b][k].clone() for k in ("exp_avg", "exp_avg_sq")}
    b.grad = torch.sparse_coo_tensor(torch.tensor([[4]]), torch.ones(1, 3), (10, 3),
                                     check_invariants=True)
    a.grad = torch.zeros(10, 3)
    a.grad[4] = 1.0
    ref.step()
    lazy.step()
    untouched = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8, 9])
    assert torch.equal(b[untouched], before[untouched])
    for k in moments:
        assert torch.equal(lazy.state[b][k][untouched], moments[k][untouched])
    assert not torch.equal(a[1], before[1])  # AdamW moved row 1 on momentum alone
    assert torch.equal(a[4], b[4])  # a row present at every step follows AdamW exactly


def test_clip_gradients_is_clip_grad_norm_on_dense_gradients_bit_for_bit():
    torch.manual_seed(0)
    grads = [torch.randn(5, 3) * 4, torch.randn(7)]
    ps = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    qs = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, q, g in zip(ps, qs, grads):
        p.grad, q.grad = g.clone(), g.clone()
    want = nn.utils.clip_grad_norm_(ps, 1.0)
    got = clip_gradients(qs, 1.0)
    assert torch.equal(want, got)
    for p, q in zip(ps, qs):
        assert torch.equal(p.grad, q.grad)


def test_clip_gradients_takes_sparse_gradients_as_their_dense_equivalent():
    """Repeated rows are summed before the norm (an uncoalesced gradient's values alone would
    give another norm)."""
    rows = torch.tensor([2, 2, 5])
    values = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    sparse = nn.Parameter(torch.zeros(8, 2))
    dense = nn.Parameter(torch.zeros(8, 2))
    other = [nn.Parameter(torch.zeros(2)) for _ in range(2)]
    sparse.grad = torch.sparse_coo_tensor(rows[None], values, (8, 2), check_invariants=True)
    dense.grad = sparse.grad.to_dense()
    other[0].grad, other[1].grad = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])
    norm = clip_gradients([sparse, other[0]], 1.0)
    want = nn.utils.clip_grad_norm_([dense, other[1]], 1.0)
    assert norm.item() == pytest.approx(5.0) and want.item() == pytest.approx(5.0)
    torch.testing.assert_close(sparse.grad.to_dense(), dense.grad)


def test_auto_update_is_sparse_for_large_catalogues_with_a_sampled_loss():
    for mode in ("sampled", "in_batch"):
        assert embedding_update("auto", loss_mode=mode, num_items=SPARSE_FROM_ITEMS) == "sparse"
        assert embedding_update("auto", loss_mode=mode, num_items=SPARSE_FROM_ITEMS - 1) == "dense"
    # the full softmax updates every row every step anyway
    assert embedding_update("auto", loss_mode="full", num_items=10 * SPARSE_FROM_ITEMS) == "dense"
    for explicit in ("dense", "sparse"):
        assert embedding_update(explicit, loss_mode="full", num_items=10) == explicit


def test_build_optimizer_makes_the_row_tables_sparse_only_when_asked():
    from negrec.models import ModelConfig, build_model

    for update, cls in (("dense", torch.optim.AdamW), ("sparse", LazyAdamW)):
        model = build_model(ModelConfig(dim=8, num_layers=1, num_heads=2, max_len=4), 20)
        opt = build_optimizer(model, OptimConfig(), update)
        assert type(opt) is cls
        assert [t.sparse for t in model.row_tables()] == [update == "sparse"]
        assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == \
            sum(p.numel() for p in model.parameters())


def test_optim_embeddings_must_be_known():
    with pytest.raises(UserError, match="optim.embeddings must be one of auto, dense, sparse; "
                                        "got 'lazy'"):
        OptimConfig(embeddings="lazy")


# the parameters of _decay_step's GRU, by how weight decay must treat them
_KEPT = {"embed.feedback_gain", "gru.bias_ih_l0", "gru.bias_hh_l0", "proj.bias", "ln.weight",
         "ln.bias", "taste.bias"}  # never decayed: gains rest at 1, biases and norms by convention
_NETWORK = {"embed.position.weight", "embed.feedback.weight", "gru.weight_ih_l0",
            "gru.weight_hh_l0", "proj.weight", "taste.weight"}  # optim.weight_decay
_ROWS = {"embed.item.weight": 20, "embed.cluster.weight": 3}  # optim.row_weight_decay: the rows
# a batch of every item looks up (sparse updates leave the padding rows alone)


def _decay_step(optim: OptimConfig, update: str):
    """A GRU (history mean, cluster input) after one step of ``build_optimizer(model, optim,
    update)`` on a batch of every item whose loss is multiplied by 0 (zero gradients, sparse
    ones for the row tables with ``sparse``: all that moves is decay), and its parameters
    before the step."""
    import numpy as np

    from negrec.models import ModelConfig, build_model

    model = build_model(ModelConfig(kind="gru", dim=8, max_len=4, history_mean=True,
                                    cluster_input=True), 20,
                        item_cluster=np.arange(20) % 3)
    assert set(dict(model.named_parameters())) == _KEPT | _NETWORK | set(_ROWS)
    with torch.no_grad():  # nonzero everywhere, so a decayed parameter visibly shrinks
        for p in model.parameters():
            p.add_(0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, optim, update)
    items = torch.arange(20).view(5, 4)
    feedback = torch.ones(5, 4, dtype=torch.int8)
    mask = torch.ones(5, 4, dtype=torch.bool)
    opt.zero_grad()
    ((model.encode(items, feedback, mask).sum() + model.item_table().sum()) * 0).backward()
    if update == "sparse":
        assert model.embed.item.weight.grad.is_sparse
    opt.step()
    return model, before


def _assert_decayed(model, before, factor):
    """Each parameter is ``factor(name)`` times what it was (its looked-up rows, for a row
    table)."""
    for name, p in model.named_parameters():
        rows = _ROWS.get(name, len(p))
        torch.testing.assert_close(p.detach()[:rows], before[name][:rows] * factor(name),
                                   msg=name)


@pytest.mark.parametrize("update", ["dense", "sparse"])
def test_weight_decay_never_pulls_the_feedback_gains_biases_or_norms_towards_zero(update):
    # a decayed stored feedback gain pulled the gain 1 + 8 (g - 1) towards -7 (stop 34)
    model, before = _decay_step(OptimConfig(lr=0.1, weight_decay=0.5), update)
    _assert_decayed(model, before, lambda name: 1.0 if name in _KEPT else 1 - 0.1 * 0.5)


def test_row_weight_decay_applies_to_the_row_tables_only():
    model, before = _decay_step(OptimConfig(lr=0.1, row_weight_decay=2.0), "dense")
    _assert_decayed(model, before, lambda name: 1 - 0.1 * 2.0 if name in _ROWS else 1.0)


def test_weight_decay_without_row_weight_decay_leaves_the_row_tables_alone():
    model, before = _decay_step(OptimConfig(lr=0.1, weight_decay=0.5, row_weight_decay=0.0),
                                "sparse")
    _assert_decayed(model, before, lambda name: 1 - 0.1 * 0.5 if name in _NETWORK else 1.0)


def test_without_weight_decay_the_optimizer_has_one_group_of_every_parameter_in_order():
    # the layout of the optimizer states saved by earlier versions (resume loads them)
    from negrec.models import ModelConfig, build_model

    model = build_model(ModelConfig(dim=8, max_len=4), 20)
    expected = list(model.parameters())
    for optim in (OptimConfig(), OptimConfig(weight_decay=0.0, row_weight_decay=0.0)):
        opt = build_optimizer(model, optim, "dense")
        assert len(opt.param_groups) == 1
        params = opt.param_groups[0]["params"]
        assert len(params) == len(expected) and all(a is b for a, b in zip(params, expected))


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_row_weight_decay_must_be_finite_and_not_negative(value):
    with pytest.raises(UserError, match="optim.row_weight_decay must be >= 0"):
        OptimConfig(row_weight_decay=value)
