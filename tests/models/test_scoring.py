"""One blocked full-catalogue scorer serves top-K and the held-out ranks, so both see the same
scores and exclusions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import negrec.models.scoring as scoring
from negrec.models.scoring import catalogue_blocks


def _assemble(states, table, **kw):
    """The full score matrix from the blocks, checking that each chunk of rows gets its item
    blocks in order, covering every item once."""
    got = torch.full((states.shape[0], table.shape[0]), float("nan"))
    sizes, rows_seen, expected_start = [], [], 0
    for rows, items, scores in catalogue_blocks(states, table, **kw):
        assert items.start == expected_start
        expected_start = 0 if items.stop == table.shape[0] else items.stop
        if items.start == 0:
            rows_seen += list(range(rows.start, rows.stop))
        got[rows, items] = scores
        sizes.append(scores.numel())
    assert rows_seen == list(range(states.shape[0])) and expected_start == 0
    return got, max(sizes)


def test_blocks_cover_every_row_and_item_with_the_full_product():
    g = torch.Generator().manual_seed(0)
    states, table = torch.randn(7, 4, generator=g), torch.randn(5, 4, generator=g)
    full = states @ table.T
    for max_scores in (1, 3, 5, 11, 35, 1 << 20):  # one score per block ... all at once
        got, largest = _assemble(states, table, max_scores=max_scores)
        assert largest <= max_scores
        # a BLAS product of a few rows may be blocked differently from one of many rows, so a
        # block's scores equal the full product's to float32 rounding, not to the bit (top-K
        # and the ranks share this function, so they always see the same bits)
        torch.testing.assert_close(got, full)


def test_blocks_stay_cache_sized_whatever_the_memory_bound(monkeypatch):
    """However much memory max_scores allows, a block holds at most BLOCK_SCORES scores of at
    most BLOCK_ROWS users (a block of a few users against the whole catalogue streamed the
    [V, D] table once per few users)."""
    monkeypatch.setattr(scoring, "BLOCK_SCORES", 12)
    monkeypatch.setattr(scoring, "BLOCK_ROWS", 3)
    g = torch.Generator().manual_seed(1)
    states, table = torch.randn(8, 4, generator=g), torch.randn(10, 4, generator=g)
    shapes = {tuple(s.shape) for _, _, s in catalogue_blocks(states, table, max_scores=1 << 20)}
    assert max(r for r, _ in shapes) == 3 and max(r * c for r, c in shapes) <= 12
    got, _ = _assemble(states, table, max_scores=1 << 20)
    torch.testing.assert_close(got, states @ table.T)


def test_exclusions_are_minus_infinity_and_out_of_range_ids_are_ignored():
    states, table = torch.ones(3, 2), torch.eye(2).repeat(2, 1)  # V = 4
    exclude = [torch.tensor([0, 3]), np.array([], dtype=np.int64), torch.tensor([-1, 4, 1])]
    inf = float("-inf")
    for max_scores in (1, 2, 4, 100):
        out, _ = _assemble(states, table, exclude=exclude, max_scores=max_scores)
        assert out.tolist() == [[inf, 1, 1, inf], [1, 1, 1, 1], [1, inf, 1, 1]]
    with pytest.raises(ValueError, match="one entry per row"):
        next(catalogue_blocks(states, table, exclude=exclude[:2]))


def test_topk_and_held_out_ranks_see_the_same_scores():
    """A held-out item's rank is one more than the items topk puts above it."""
    from negrec.data import leave_one_out
    from negrec.eval.metrics import held_out_ranks
    from negrec.models import ModelConfig, build_model
    from negrec.sim import SimConfig, Simulator
    from negrec.train.objectives import OBJECTIVES

    log, _ = Simulator(SimConfig(num_items=60, num_clusters=6, num_creators=8, num_users=30,
                                 events_per_user=10)).generate()
    split = leave_one_out(log)
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=8, num_layers=1, max_len=8, dropout=0.0), 60).eval()
    inputs = OBJECTIVES["input_ntr"].inputs
    ranks = held_out_ranks(model, split.test, inputs)
    from negrec.eval.recommend import recommend

    hist = split.test.history
    histories = [hist.user_events(u) for u in range(hist.num_users)]
    top, _ = recommend(model, inputs, [(i.tolist(), f.tolist()) for i, f in histories], 60 - 9)
    for row, rank in enumerate(ranks):
        target = split.test.items[row]
        if target in histories[row][0]:
            continue  # a repeated item is excluded from topk but ranked against the others
        assert list(top[row]).index(target) + 1 == rank
