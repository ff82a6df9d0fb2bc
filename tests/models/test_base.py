"""The model interface: shapes, causality, padding invariance, feedback switch, top-K."""

from __future__ import annotations

import pytest
import torch

from negrec.models import ModelConfig, build_model, model_kinds

V = 40


def histories(B=4, L=8, seed=0, left=True):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([L, L - 3, 1, 5])[:B]
    items = torch.full((B, L), V)
    fb = torch.zeros(B, L, dtype=torch.int8)
    for b, n in enumerate(lengths.tolist()):
        sl = slice(L - n, L) if left else slice(0, n)
        items[b, sl] = torch.randint(0, V, (n,), generator=g)
        fb[b, sl] = torch.randint(1, 5, (n,), generator=g, dtype=torch.int8)
    return items, fb, items != V


@pytest.fixture(params=model_kinds())  # every registered model
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig(kind=request.param, dim=16, num_layers=2, num_heads=2,
                                   dropout=0.0, max_len=8), V).eval()


def test_shapes_and_table(model):
    items, fb, mask = histories()
    states = model.encode(items, fb, mask)
    assert states.shape == (4, 8, 16) and states.dtype == torch.float32
    assert model.item_table().shape == (V, 16)
    s = model.score(states[:, -1], torch.tensor([1, 2, 3]))
    assert s.shape == (4, 3)
    s2 = model.score(states[:, -1], torch.tensor([[1], [2], [3], [4]]))
    torch.testing.assert_close(s2[:3, 0], torch.stack([s[0, 0], s[1, 1], s[2, 2]]))


def test_padding_side_does_not_matter(model):
    a = model.last_state(*histories(left=True))
    b = model.last_state(*histories(left=False))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_causality(model):
    items, fb, mask = histories()
    states = model.encode(items, fb, mask)
    items2, fb2 = items.clone(), fb.clone()
    items2[0, -1] = (items[0, -1] + 1) % V  # change the last event of row 0
    fb2[0, -1] = 4
    states2 = model.encode(items2, fb2, mask)
    torch.testing.assert_close(states[0, :-1], states2[0, :-1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(states[0, -1], states2[0, -1])


def test_feedback_switch():
    torch.manual_seed(0)
    items, fb, mask = histories()
    fb_other = torch.where(mask, torch.full_like(fb, 4), fb)
    for kind in model_kinds():
        off = build_model(ModelConfig(kind=kind, dim=16, dropout=0.0, max_len=8, feedback_input=False), V).eval()
        torch.testing.assert_close(off.encode(items, fb, mask), off.encode(items, fb_other, mask))
        on = build_model(ModelConfig(kind=kind, dim=16, dropout=0.0, max_len=8), V).eval()
        # feedback codes start meaning nothing (zero embeddings, unit gains): an untrained
        # model is blind to them, so a "response" can only come from training ...
        torch.testing.assert_close(on.encode(items, fb, mask), on.encode(items, fb_other, mask))
        # ... and once the codes' parameters have values, they change the states
        with torch.no_grad():
            on.embed.feedback.weight[1:].normal_()
        assert not torch.allclose(on.encode(items, fb, mask), on.encode(items, fb_other, mask))


def test_topk_is_exact_chunked_and_excludes(model):
    items, fb, mask = histories()
    exclude = [row[m] for row, m in zip(items, mask)]
    scores, ids = model.topk(items, fb, mask, 5, exclude=exclude)
    full = model.last_state(items, fb, mask) @ model.item_table().T
    for b in range(4):
        full[b, exclude[b]] = float("-inf")
    want = torch.topk(full, 5, dim=1)
    torch.testing.assert_close(scores, want.values)
    assert torch.equal(ids, want.indices)
    for b in range(4):
        assert not set(ids[b].tolist()) & set(exclude[b].tolist())
    s2, i2 = model.topk(items, fb, mask, 5, exclude=exclude, max_scores=V)  # one row per chunk
    assert torch.equal(i2, ids)
    with pytest.raises(ValueError, match=r"k must be in \[1, 40\]"):
        model.topk(items, fb, mask, 0)


def test_metadata_embeddings():
    import numpy as np

    cluster = np.arange(V) % 5
    cluster[3] = -1
    m = build_model(ModelConfig(dim=8, max_len=8, cluster_input=True, creator_input=True), V,
                    item_cluster=cluster, item_creator=np.arange(V) % 7)
    items, fb, mask = histories()
    assert m.encode(items, fb, mask).shape == (4, 8, 8)
    with pytest.raises(ValueError, match="cluster_input needs item clusters"):
        build_model(ModelConfig(dim=8, cluster_input=True), V)


@pytest.mark.parametrize("kind,tied,count_prior",
                         [(k, t, False) for k in model_kinds() for t in (True, False)]
                         + [("gru", True, True), ("gru", False, True),
                            ("gru", True, "no item score")])
def test_item_embeddings_are_the_table_rows_with_the_same_gradients(kind, tied, count_prior):
    """item_embeddings computes only the distinct rows its ids need, with the values and the
    gradients (bit for bit) of gathering them from item_table(); those rows come from the
    row_tables() (the tables that grow with the catalogue)."""
    import numpy as np
    import torch.nn.functional as F

    torch.manual_seed(0)
    m = build_model(ModelConfig(kind=kind, dim=8, max_len=8, cluster_input=True,
                                creator_input=True, tied=tied, count_prior=bool(count_prior),
                                count_prior_item_score=count_prior is True), V,
                    item_cluster=np.arange(V) % 5 - 1, item_creator=np.arange(V) % 7)
    if count_prior is True:  # item scores that are not zero, so that their gradients are compared
        with torch.no_grad():
            m.item_score.weight.normal_()
    width = m.item_table().shape[1]  # with the count prior, D + 1 + C (D + C without the score)
    g = torch.Generator().manual_seed(1)
    ids = (torch.randint(0, V, (6, 3), generator=g), torch.randint(0, 10, (25,), generator=g))
    weights = [torch.randn(*i.shape, width, generator=g) for i in ids]

    def grads(rows):
        m.zero_grad(set_to_none=True)
        sum((w * r).sum() for w, r in zip(weights, rows)).backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    table = m.item_table()
    want = [F.embedding(i, table) for i in ids]
    want_grads = grads(want)
    got = m.item_embeddings(*ids)
    got_grads = grads(got)
    for w, r in zip(want, got):
        assert torch.equal(w, r)
    assert want_grads.keys() == got_grads.keys()
    for name in want_grads:
        assert torch.equal(want_grads[name], got_grads[name]), name
    assert m.item_embeddings(ids[1], dtype=torch.float64)[0].dtype == torch.float64
    # the item rows come from the row tables only (what a sparse update may restrict)
    assert all(isinstance(t, torch.nn.Embedding) for t in m.row_tables())
    touched = {id(p) for n, p in m.named_parameters() if n in got_grads}
    assert touched and touched <= {id(t.weight) for t in m.row_tables()}


@pytest.mark.parametrize("rate", [1.0, 8.0, None])
def test_feedback_gains_start_at_one_and_move_at_their_rate(rate):
    """The gains are ``1 + rate * (stored - 1)``: exactly 1 before training whatever the rate
    (an untrained model stays blind to feedback), and one Adam step moves them ``rate`` times
    as far as a plain parameter (null: sqrt(dim), the item embeddings' rate)."""
    items, fb, mask = histories()
    fb_other = torch.where(mask, torch.full_like(fb, 4), fb)
    moved = {}
    for r in (1.0, rate):
        torch.manual_seed(0)
        model = build_model(ModelConfig(kind="gru", dim=16, dropout=0.0, max_len=8,
                                        feedback_gain_rate=r), V)
        assert torch.equal(model.embed.gains(), torch.ones_like(model.embed.gains()))
        torch.testing.assert_close(model.encode(items, fb, mask), model.encode(items, fb_other, mask))
        # eps negligible: Adam's first step is then lr * sign(grad) for any gradient scale
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-30)
        model.encode(items, fb, mask).square().sum().backward()
        opt.step()
        moved[r] = (model.embed.gains() - 1).detach()
    expected = 4.0 if rate is None else rate  # sqrt(dim 16)
    assert moved[1.0].abs().max() > 0
    torch.testing.assert_close(moved[rate], expected * moved[1.0], rtol=1e-6, atol=0)
