"""The GRU recommender."""

from __future__ import annotations

import torch

from negrec.models.config import ModelConfig
from negrec.models.registry import build_model


def test_an_empty_batch_gives_empty_states_and_zero_gradients():
    # a DDP rank's share of the last batch of an epoch can be empty; packing refused it
    model = build_model(ModelConfig(kind="gru", dim=8, num_layers=1, max_len=6), 20)
    items = torch.zeros(0, 6, dtype=torch.long)
    states = model.encode(items, torch.zeros(0, 6, dtype=torch.int8), torch.zeros(0, 6, dtype=torch.bool))
    assert states.shape == (0, 6, 8)
    states.sum().backward()
    assert model.gru.weight_ih_l0.grad is not None
    assert torch.count_nonzero(model.gru.weight_ih_l0.grad) == 0
