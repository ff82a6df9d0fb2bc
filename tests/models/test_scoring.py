"""One chunked full-catalogue scorer serves top-K and the held-out ranks, so both see the same
scores and exclusions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negrec.models.scoring import catalogue_scores


def test_chunks_cover_every_row_with_the_full_product():
    g = torch.Generator().manual_seed(0)
    states, table = torch.randn(7, 4, generator=g), torch.randn(5, 4, generator=g)
    full = states @ table.T
    for max_scores in (1, 5, 11, 35, 1 << 20):  # 1 row per chunk ... every row at once
        got = torch.empty_like(full)
        seen = []
        for rows, scores in catalogue_scores(states, table, max_scores=max_scores):
            assert scores.shape[0] <= max(1, max_scores // 5)
            got[rows] = scores
            seen += list(range(rows.start, rows.stop))
        assert seen == list(range(7))
        # a BLAS product of a few rows may be blocked differently from one of many rows, so a
        # chunk's scores equal the full product's to float32 rounding, not to the bit (top-K
        # and the ranks share this function, so they always see the same bits)
        torch.testing.assert_close(got, full)


def test_exclusions_are_minus_infinity_and_out_of_range_ids_are_ignored():
    states, table = torch.ones(3, 2), torch.eye(2).repeat(2, 1)  # V = 4
    exclude = [torch.tensor([0, 3]), np.array([], dtype=np.int64), torch.tensor([-1, 4, 1])]
    out = torch.cat([s for _, s in catalogue_scores(states, table, exclude=exclude, max_scores=4)])
    inf = float("-inf")
    assert out.tolist() == [[inf, 1, 1, inf], [1, 1, 1, 1], [1, inf, 1, 1]]
    with pytest.raises(ValueError, match="one entry per row"):
        next(catalogue_scores(states, table, exclude=exclude[:2]))


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
