"""The GRU recommender."""

from __future__ import annotations

import pytest
import torch

from negrec.models.config import ModelConfig
from negrec.models.registry import build_model

from .test_base import V, histories


def test_an_empty_batch_gives_empty_states_and_zero_gradients():
    # a DDP rank's share of the last batch of an epoch can be empty; packing refused it
    model = build_model(ModelConfig(kind="gru", dim=8, num_layers=1, max_len=6), 20)
    items = torch.zeros(0, 6, dtype=torch.long)
    states = model.encode(items, torch.zeros(0, 6, dtype=torch.int8), torch.zeros(0, 6, dtype=torch.bool))
    assert states.shape == (0, 6, 8)
    states.sum().backward()
    assert model.gru.weight_ih_l0.grad is not None
    assert torch.count_nonzero(model.gru.weight_ih_l0.grad) == 0


def _gate_biases(model, layer: int = 0):
    H = model.config.dim
    return (getattr(model.gru, f"bias_ih_l{layer}")[H:2 * H].detach(),
            getattr(model.gru, f"bias_hh_l{layer}")[H:2 * H].detach())


def test_chrono_init_spreads_the_update_gates_over_the_history_length():
    torch.manual_seed(0)
    config = ModelConfig(kind="gru", dim=64, num_layers=2, max_len=50, chrono_init=True)
    model = build_model(config, 30)
    for layer in (0, 1):
        b_ih, b_hh = _gate_biases(model, layer)
        assert torch.all(b_hh == 0)
        # log T, T in [1, max_len - 1]: memories from one event to the whole history
        assert b_ih.min() >= 0 and b_ih.max() <= torch.log(torch.tensor(49.0)) + 1e-6
        assert b_ih.min() < 0.5 and b_ih.max() > 3.4
    off = build_model(ModelConfig(kind="gru", dim=64, max_len=50, chrono_init=False), 30)
    b_ih, b_hh = _gate_biases(off)
    assert (b_ih.abs().max() <= 1 / 8) and (b_hh.abs().max() <= 1 / 8)  # PyTorch's U(-1/sqrt(H), 1/sqrt(H))


def _first_event_influence(chrono: bool, seed: int) -> float:
    """How much the last state of an untrained model moves when the first of 40 events changes,
    relative to when the last one does."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(kind="gru", dim=32, max_len=40, dropout=0.0,
                                    chrono_init=chrono), 100).eval()
    items = torch.randint(0, 100, (16, 40))
    fb = torch.ones(16, 40, dtype=torch.int8)
    mask = torch.ones(16, 40, dtype=torch.bool)
    first, last = items.clone(), items.clone()
    first[:, 0] = (first[:, 0] + 50) % 100
    last[:, -1] = (last[:, -1] + 50) % 100
    with torch.no_grad():
        base = model.encode(items, fb, mask)[:, -1]
        moved_first = (model.encode(first, fb, mask)[:, -1] - base).norm(dim=-1).mean()
        moved_last = (model.encode(last, fb, mask)[:, -1] - base).norm(dim=-1).mean()
    return float(moved_first / moved_last)


def test_chrono_init_remembers_the_start_of_a_long_history():
    # PyTorch's initialisation forgets an event within a few steps (update gates near 1/2:
    # 40 events later ~1e-7 of the last event's effect is left), so a taste shown over 50
    # events must be learnt against that; chrono-initialised slow units keep ~1e-2 of it
    for seed in range(3):
        with_chrono, without = _first_event_influence(True, seed), _first_event_influence(False, seed)
        assert with_chrono > 2e-3 and without < 1e-5, (seed, with_chrono, without)


def test_chrono_max_memory_bounds_the_longest_time_scale():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="gru", dim=64, max_len=50, chrono_init=True,
                                    chrono_max_memory=12), 30)
    b_ih, _ = _gate_biases(model)
    # log T, T in [1, 12]: no unit starts with a memory longer than 12 events
    assert b_ih.min() >= 0 and b_ih.max() <= torch.log(torch.tensor(12.0)) + 1e-6
    assert b_ih.max() > torch.log(torch.tensor(9.0))


def _taste_model(history_mean: bool, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(kind="gru", dim=16, max_len=8, dropout=0.0,
                                   history_mean=history_mean), V).eval()


def test_history_mean_starts_as_the_plain_gru():
    # the taste map starts at zero: an untrained model is the plain GRU (same seed, same
    # parameters), so it is as blind to feedback codes as the GRU is
    items, fb, mask = histories(left=True)
    with torch.no_grad():
        torch.testing.assert_close(_taste_model(True).encode(items, fb, mask),
                                   _taste_model(False).encode(items, fb, mask))


def test_history_mean_adds_the_causal_mean_of_the_event_embeddings():
    model = _taste_model(True)
    seen = []
    model.proj.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    items, fb, mask = histories(left=False)
    with torch.no_grad():
        model.encode(items, fb, mask)  # the taste map at zero: the GRU's outputs alone
        model.taste.weight.copy_(torch.eye(16))  # the identity: the mean itself is added
        model.encode(items, fb, mask)
        x = model.embed(items, fb, mask)
    gru_only, with_taste = seen
    for row, t in ((0, 7), (1, 3), (1, 4), (2, 0)):  # real events (right padded: 8, 5, 1, 5)
        torch.testing.assert_close(with_taste[row, t] - gru_only[row, t], x[row, :t + 1].mean(0))


def test_history_mean_keeps_causality_and_padding_invariance():
    model = _taste_model(True)
    with torch.no_grad():
        model.taste.weight.normal_()
        model.embed.feedback.weight[1:].normal_()
    left, right = histories(left=True), histories(left=False)
    torch.testing.assert_close(model.last_state(*left), model.last_state(*right), rtol=1e-5, atol=1e-5)
    items, fb, mask = left
    states = model.encode(items, fb, mask)
    items2 = items.clone()
    items2[0, -1] = (items[0, -1] + 1) % V  # the last event of row 0
    states2 = model.encode(items2, fb, mask)
    torch.testing.assert_close(states[0, :-1], states2[0, :-1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(states[0, -1], states2[0, -1])


RECENT = {"count_prior_item_score": False, "count_prior_recency": True}  # the recent-counts form
ITEM_SCORE = {"count_prior_item_score": True, "count_prior_recency": False}  # the first form


def _prior_model(count_prior: bool, tied: bool = True, seed: int = 0, codes: bool = True,
                 **prior):
    import numpy as np

    torch.manual_seed(seed)
    if count_prior:  # the first form (a per-item score, no recent counts) unless told
        prior = {**ITEM_SCORE, **prior}
    return build_model(ModelConfig(kind="gru", dim=16, max_len=8, dropout=0.0, tied=tied,
                                   cluster_input=True, feedback_input=codes,
                                   count_prior=count_prior, **prior), V,
                       item_cluster=np.arange(V) % 5).eval()


def test_count_prior_starts_at_zero_and_scores_as_the_plain_gru():
    # the prior's scales and item scores start at zero: an untrained model ranks exactly as
    # without it (same seed, same parameters), so it is as blind to feedback codes
    items, fb, mask = histories(left=True)
    for tied in (True, False):
        with_prior, plain = _prior_model(True, tied), _prior_model(False, tied)
        states = with_prior.last_state(items, fb, mask)
        width = 16 + 1 + 6  # D, the item score, the shares over 5 clusters + the padding row
        assert states.shape == (4, width) and with_prior.item_table().shape == (V, width)
        torch.testing.assert_close(states[:, :16], plain.last_state(items, fb, mask))
        torch.testing.assert_close(with_prior.item_table()[:, :16], plain.item_table())
        torch.testing.assert_close(with_prior.score(states, torch.arange(V)),
                                   plain.score(plain.last_state(items, fb, mask), torch.arange(V)))
        assert torch.equal(with_prior.topk(items, fb, mask, 5)[1], plain.topk(items, fb, mask, 5)[1])


def test_count_prior_scores_the_log_shares_of_the_history_per_cluster():
    import math

    model = _prior_model(True)
    items, fb, mask = histories(left=False)
    with torch.no_grad():
        model.count_scale.copy_(torch.tensor([0.5, -0.25]))  # stored / sqrt(dim) = 4
        model.item_score.weight[7] = 0.125  # stored / dim = 16: a score of 2
    states = model.encode(items, fb, mask)
    table = model.item_table()
    C = 6
    for row, t in ((0, 7), (1, 4), (2, 0), (3, 2)):  # real events (right padded: 8, 5, 1, 5)
        seen = items[row, :t + 1] % 5
        codes = fb[row, :t + 1]
        for item in (7, 13):
            c = item % 5
            pos = int(((seen == c) & (codes == 1)).sum()), int((codes == 1).sum())
            bad = int(((seen == c) & (codes >= 3)).sum()), int((codes >= 3).sum())
            want = (2.0 if item == 7 else 0.0) + 0.5 * 4 * math.log((pos[0] + 1) / (pos[1] + C)) \
                - 0.25 * 4 * math.log((bad[0] + 1) / (bad[1] + C))
            got = states[row, t, 16:] @ table[item, 16:]
            torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prior", [{}, RECENT], ids=["shares", "shares and recent counts"])
def test_count_prior_keeps_causality_and_padding_invariance(prior):
    model = _prior_model(True, **prior)
    with torch.no_grad():
        model.count_scale.normal_()
    left, right = histories(left=True), histories(left=False)
    torch.testing.assert_close(model.last_state(*left), model.last_state(*right), rtol=1e-5, atol=1e-5)
    items, fb, mask = left
    states = model.encode(items, fb, mask)
    fb2 = fb.clone()
    fb2[0, -1] = 1 if fb[0, -1] != 1 else 4  # the last event of row 0 changes its code
    states2 = model.encode(items, fb2, mask)
    torch.testing.assert_close(states[0, :-1], states2[0, :-1])
    assert not torch.allclose(states[0, -1, 16:], states2[0, -1, 16:])
    items2 = items.clone()
    items2[0, -1] = (items[0, -1] + 1) % V  # the last event of row 0, another cluster
    states3 = model.encode(items2, fb, mask)
    torch.testing.assert_close(states[0, :-1], states3[0, :-1])
    assert not torch.allclose(states[0, -1, 16:], states3[0, -1, 16:])


def test_count_prior_without_feedback_codes_counts_every_event():
    model = _prior_model(True, codes=False)
    with torch.no_grad():
        model.count_scale.copy_(torch.tensor([1.0, 1.0]))
    items, fb, mask = histories(left=True)
    a = model.encode(items, fb, mask)
    b = model.encode(items, torch.ones_like(fb) * mask, mask)  # every event positive
    torch.testing.assert_close(a, b)


def test_count_prior_is_a_row_table_the_loss_trains():
    # the item scores have a row per item (what a sparse update restricts) and the training
    # loss, full or sampled softmax, reaches them and the scales through the fused op
    from negrec.data.batch import Batch
    from negrec.train.config import LossConfig
    from negrec.train.loss import batch_loss

    model = _prior_model(True).train()
    assert any(t is model.item_score for t in model.row_tables())
    items, fb, mask = histories(left=True)
    targets = (items + 1) % V
    labels = torch.where(mask, torch.ones_like(fb), torch.zeros_like(fb))
    labels[0, 2] = -1  # one not-to-recommend target
    neg = torch.tensor([0, 5, 9, 11])
    batch = Batch(users=torch.arange(4), input_items=items, input_feedback=fb, mask=mask,
                  lengths=mask.sum(1), target_items=targets, target_labels=labels,
                  target_weights=mask.float(), neg_ids=neg, neg_logq=torch.zeros(4),
                  target_logq=torch.zeros_like(mask, dtype=torch.float))
    for mode in ("full", "sampled"):
        model.zero_grad(set_to_none=True)
        batch_loss(model, batch, LossConfig(mode=mode, num_negatives=4, ntr_negatives=0)).total.backward()
        grad = model.item_score.weight.grad
        assert grad is not None and torch.count_nonzero(grad) > 0, mode
        assert torch.count_nonzero(model.count_scale.grad) == 2, mode
        if mode == "sampled":  # only the targets' and the candidates' scores are touched
            touched = set(torch.nonzero(grad[:, 0]).flatten().tolist())
            assert touched <= set(targets[labels != 0].tolist()) | set(neg.tolist())


def test_count_prior_refuses_sasrec_and_items_without_clusters():
    import pytest

    from negrec.errors import UserError

    with pytest.raises(UserError, match="count_prior is implemented for model.kind 'gru' only"):
        ModelConfig(kind="sasrec", count_prior=True)
    with pytest.raises(UserError, match="count_prior needs item clusters"):
        build_model(ModelConfig(kind="gru", dim=8, max_len=8, count_prior=True), V)


def test_count_prior_recency_and_no_item_score_start_at_zero():
    from negrec.models.gru import RECENT_COUNT_DECAYS

    items, fb, mask = histories(left=True)
    for tied in (True, False):
        model, plain = _prior_model(True, tied, **RECENT), _prior_model(False, tied)
        assert model.item_score is None and all(t is not None for t in model.row_tables())
        assert model.count_scale.shape == (2 + 2 * len(RECENT_COUNT_DECAYS),)
        states = model.last_state(items, fb, mask)
        assert states.shape == (4, 16 + 6) and model.item_table().shape == (V, 16 + 6)
        torch.testing.assert_close(model.score(states, torch.arange(V)),
                                   plain.score(plain.last_state(items, fb, mask), torch.arange(V)))


def test_count_prior_recency_scores_the_decayed_recent_counts_per_cluster():
    import math

    from negrec.models.gru import RECENT_COUNT_DECAYS

    model = _prior_model(True, **RECENT)
    scales = torch.tensor([0.5, -0.25, 0.125, -0.375, 0.25, -0.5])  # stored / sqrt(dim) = 4
    with torch.no_grad():
        model.count_scale.copy_(scales)
    for left in (True, False):
        items, fb, mask = histories(left=left)
        states = model.encode(items, fb, mask)
        table = model.item_table()
        C = 6
        for row in range(4):
            real = torch.nonzero(mask[row]).flatten().tolist()
            for n in range(1, len(real) + 1):
                t = real[n - 1]
                seen, codes = items[row, real[:n]] % 5, fb[row, real[:n]]
                for item in (7, 13):
                    c = item % 5
                    pos = int(((seen == c) & (codes == 1)).sum()), int((codes == 1).sum())
                    bad = int(((seen == c) & (codes >= 3)).sum()), int((codes >= 3).sum())
                    want = 4 * (0.5 * math.log((pos[0] + 1) / (pos[1] + C))
                                - 0.25 * math.log((bad[0] + 1) / (bad[1] + C)))
                    lags = [n - 1 - s for s in range(n)]  # events since each one
                    for j, d in enumerate(RECENT_COUNT_DECAYS):
                        every = sum((1 - d) * d ** lag for lag, k in zip(lags, seen.tolist()) if k == c)
                        negative = sum((1 - d) * d ** lag for lag, k, code in
                                       zip(lags, seen.tolist(), codes.tolist()) if k == c and code >= 3)
                        want += 4 * (scales[2 + j].item() * every + scales[4 + j].item() * negative)
                    got = states[row, t, 16:] @ table[item, 16:]
                    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-5)


def test_count_prior_options_refuse_to_do_nothing():
    from negrec.errors import UserError

    for key, value in (("count_prior_recency", False), ("count_prior_item_score", True)):
        with pytest.raises(UserError, match=f"model.{key} shapes count_prior; it does nothing "
                                            f"with count_prior false \\(got {value}\\)"):
            ModelConfig(kind="gru", count_prior=False, **{key: value})
        ModelConfig(kind="gru", **{key: value})  # automatic: on wherever the items have clusters


def test_an_automatic_count_prior_is_on_exactly_where_a_gru_has_item_clusters():
    import numpy as np

    from negrec.errors import UserError
    from negrec.models.gru import RECENT_COUNT_DECAYS

    clusters, none = np.arange(V) % 5, np.full(V, -1)
    auto = ModelConfig(kind="gru", dim=8)
    assert auto.count_prior is None  # the default: decided for the items
    assert auto.for_items(clusters, None).count_prior is True
    assert auto.for_items(none, None).count_prior is False  # no item has a known cluster
    assert auto.for_items(None, None).count_prior is False
    assert ModelConfig(kind="gru", dim=8, cluster_input=False).for_items(clusters, None).count_prior is False
    assert ModelConfig(kind="sasrec", dim=8).for_items(clusters, None).count_prior is False
    assert ModelConfig(kind="gru", dim=8, count_prior=False).for_items(clusters, None).count_prior is False
    with pytest.raises(UserError, match="model.count_prior is true but the model has no item clusters"):
        ModelConfig(kind="gru", dim=8, count_prior=True).for_items(None, None)
    # an automatic prior decided off: its options (shaping nothing) are not refused
    for kind, meta in (("sasrec", clusters), ("gru", None)):
        off = ModelConfig(kind=kind, dim=8, count_prior_recency=False).for_items(meta, None)
        assert (off.count_prior, off.count_prior_recency) == (False, True)
    # decided, the model is the one an explicit setting builds: the recent counts, no item score
    torch.manual_seed(0)
    decided = build_model(auto.for_items(clusters, None), V, item_cluster=clusters)
    torch.manual_seed(0)
    explicit = build_model(ModelConfig(kind="gru", dim=8, count_prior=True,
                                       count_prior_item_score=False, count_prior_recency=True,
                                       cluster_input=True), V, item_cluster=clusters)
    assert decided.item_score is None and decided.count_scale.numel() == 2 + 2 * len(RECENT_COUNT_DECAYS)
    for (k, a), (_, b) in zip(decided.state_dict().items(), explicit.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
