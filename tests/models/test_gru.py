"""The GRU recommender."""

from __future__ import annotations

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
