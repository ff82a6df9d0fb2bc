"""Negative samplers: exact probabilities, input checks, in-batch negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negrec.data import (CollateConfig, Collator, EventLog, Feedback, InBatchSampler,
                         PopularitySampler, UniformSampler, make_sampler)


def test_popularity_sampler_matches_its_probabilities(native):
    counts = np.array([0, 10, 100, 1000, 5])
    s = PopularitySampler(counts, num_negatives=200_000, alpha=0.75)
    want = (counts + 1.0) ** 0.75
    want = want / want.sum()
    torch.testing.assert_close(s.probabilities, torch.tensor(want, dtype=torch.float64))
    ids, logq = s.sample(None, torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=5).double() / len(ids)
    # 5 sigma of a binomial proportion with n = 200,000
    sigma = torch.sqrt(torch.tensor(want) * (1 - torch.tensor(want)) / len(ids))
    assert torch.all((freq - torch.tensor(want)).abs() <= 5 * sigma + 1e-12)
    torch.testing.assert_close(logq, torch.tensor(np.log(want), dtype=torch.float32)[ids])
    torch.testing.assert_close(s.log_prob(torch.tensor([3, 0])),
                               torch.tensor(np.log(want[[3, 0]]), dtype=torch.float32))
    a, _ = s.sample(None, torch.Generator().manual_seed(5))
    b, _ = s.sample(None, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_sampler_input_checks(native):
    with pytest.raises(ValueError, match="counts must be finite and >= 0"):
        PopularitySampler(np.array([1.0, -1.0]), 4)
    with pytest.raises(ValueError, match="num_negatives must be > 0"):
        UniformSampler(10, 0)
    with pytest.raises(ValueError, match="smoothing must be >= 0, and > 0 when some item has count 0"):
        PopularitySampler(np.array([0.0, 1.0]), 4, smoothing=0.0)
    with pytest.raises(ValueError, match="weights must be finite and >= 0; got nan at index 1"):
        native.AliasTable(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="unknown sampler 'zipf'"):
        make_sampler("zipf", num_items=3, num_negatives=2, counts=np.ones(3))


def test_uniform_and_in_batch_samplers(native):
    s = UniformSampler(50, 1000)
    ids, logq = s.sample(None, torch.Generator().manual_seed(0))
    assert ids.min() >= 0 and ids.max() < 50 and len(set(ids.tolist())) > 40
    assert torch.allclose(logq, torch.full((1000,), -np.log(50), dtype=torch.float32))
    log = EventLog.from_events([0] * 5 + [1] * 4, [0, 1, 2, 1, 3, 4, 1, 0, 2], list(range(9)),
                               [1, 1, 4, 1, 1, 1, 1, 3, 1])
    counts = log.item_counts([Feedback.POSITIVE])
    ib = InBatchSampler(counts)
    b = Collator(log, CollateConfig(max_len=8), sampler=ib)([0, 1])
    pos_targets = set(b.target_items[b.target_labels == 1].tolist())
    assert set(b.neg_ids.tolist()) == pos_targets and len(b.neg_ids) == len(pos_targets)
    p = (counts + 1.0) / (counts + 1.0).sum()
    torch.testing.assert_close(b.neg_logq, torch.tensor(np.log(p), dtype=torch.float32)[b.neg_ids])
