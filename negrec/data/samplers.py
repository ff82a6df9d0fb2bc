"""Negative samplers: modules separate from the loss, each giving candidate ids and the exact
log-probabilities used for the logQ correction of a sampled softmax.

All samplers share one interface:

- ``sample(batch, generator)`` -> ``(neg_ids [K] int64, neg_logq [K] float32)``: the shared
  candidates of one batch (``batch`` gives access to its targets, for in-batch sampling);
- ``log_prob(ids)`` -> ``[...] float32``: log q(item) of the sampling distribution, for the
  targets' logQ correction.

Draws are reproducible: from the ``torch.Generator`` passed in (or torch's default one).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor

from negrec import _extension
from negrec.data.seeding import draw_seed

if TYPE_CHECKING:
    from negrec.data.batch import Batch

__all__ = ["NegativeSampler", "UniformSampler", "PopularitySampler", "InBatchSampler",
           "make_sampler"]


class NegativeSampler(Protocol):
    num_items: int

    def sample(self, batch: "Batch | None", generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]: ...

    def log_prob(self, ids: Tensor) -> Tensor: ...


class UniformSampler:
    """K items drawn uniformly with replacement; log q = -log V for every item."""

    def __init__(self, num_items: int, num_negatives: int):
        if num_items <= 0:
            raise ValueError(f"UniformSampler: num_items must be > 0; got {num_items}")
        if num_negatives <= 0:
            raise ValueError(f"UniformSampler: num_negatives must be > 0; got {num_negatives}")
        self.num_items, self.num_negatives = num_items, num_negatives
        self._logq = -math.log(num_items)

    def sample(self, batch=None, generator=None):
        ids = torch.randint(0, self.num_items, (self.num_negatives,), generator=generator)
        return ids, torch.full((self.num_negatives,), self._logq, dtype=torch.float32)

    def log_prob(self, ids: Tensor) -> Tensor:
        return torch.full(ids.shape, self._logq, dtype=torch.float32, device=ids.device)


class PopularitySampler:
    """K items drawn with replacement with probability ∝ (count + smoothing) ** alpha, by an
    alias table in C++ (O(1) per draw). ``alpha = 0`` is uniform, 1 is the unigram
    distribution; 0.75 (word2vec's choice) is a common middle ground. Without the compiled
    extension it draws with ``torch.multinomial`` (same distribution, other draws), with the
    package's one warning (:func:`negrec._extension.warn_fallback`)."""

    def __init__(self, counts: np.ndarray | Tensor, num_negatives: int, alpha: float = 0.75,
                 smoothing: float = 1.0):
        counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
        if counts.dim() != 1 or counts.numel() == 0:
            raise ValueError(f"PopularitySampler: counts must be a non-empty 1-D array; got "
                             f"shape {list(counts.shape)}")
        if bool((counts < 0).any()) or not bool(torch.isfinite(counts).all()):
            raise ValueError("PopularitySampler: counts must be finite and >= 0")
        if num_negatives <= 0:
            raise ValueError(f"PopularitySampler: num_negatives must be > 0; got {num_negatives}")
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"PopularitySampler: alpha must be finite and >= 0; got {alpha}")
        if smoothing < 0 or (smoothing == 0 and bool((counts == 0).any()) and alpha > 0):
            raise ValueError("PopularitySampler: smoothing must be >= 0, and > 0 when some item "
                             "has count 0 (it could never be sampled)")
        weights = (counts + smoothing) ** alpha
        self.num_items, self.num_negatives, self.alpha = counts.numel(), num_negatives, alpha
        self._probs = weights / weights.sum()
        self._logq = self._probs.log().float()
        self._table = _extension._C.AliasTable(weights) if _extension._C is not None else None

    def sample(self, batch=None, generator=None):
        if self._table is not None:
            ids = self._table.sample(self.num_negatives, draw_seed(generator))
        else:
            _extension.warn_fallback("negrec.data.PopularitySampler", "torch.multinomial")
            ids = torch.multinomial(self._probs, self.num_negatives, replacement=True,
                                    generator=generator)
        return ids, self._logq[ids]

    def log_prob(self, ids: Tensor) -> Tensor:
        return self._logq.to(ids.device)[ids]

    @property
    def probabilities(self) -> Tensor:
        return self._probs


class InBatchSampler:
    """The batch's own positive targets as the shared negatives (each distinct item once),
    with log q = log of the item's share of positive training targets (its chance of being
    someone's target, which is why in-batch negatives are biased towards popular items)."""

    def __init__(self, positive_counts: np.ndarray | Tensor, smoothing: float = 1.0):
        counts = torch.as_tensor(np.asarray(positive_counts), dtype=torch.float64) + smoothing
        if counts.dim() != 1 or counts.numel() == 0 or bool((counts <= 0).any()):
            raise ValueError("InBatchSampler: positive_counts must be a non-empty 1-D array of "
                             "counts >= 0 (with smoothing > 0 when some are 0)")
        self.num_items = counts.numel()
        self._logq = (counts / counts.sum()).log().float()

    def sample(self, batch, generator=None):
        if batch is None or batch.target_items is None:
            raise ValueError("InBatchSampler.sample needs a training batch (with targets)")
        pos = batch.target_items[batch.target_labels == 1]
        ids = torch.unique(pos)
        return ids, self._logq[ids]

    def log_prob(self, ids: Tensor) -> Tensor:
        return self._logq.to(ids.device)[ids]


def make_sampler(kind: str, *, num_items: int, num_negatives: int, counts: np.ndarray | None = None,
                 alpha: float = 0.75) -> NegativeSampler | None:
    """``kind`` in uniform | popularity | in_batch | full (full softmax: no sampler)."""
    if kind == "full":
        return None
    if kind == "uniform":
        return UniformSampler(num_items, num_negatives)
    if counts is None:
        raise ValueError(f"make_sampler: the {kind!r} sampler needs item counts")
    if kind == "popularity":
        return PopularitySampler(counts, num_negatives, alpha=alpha)
    if kind == "in_batch":
        return InBatchSampler(counts)
    raise ValueError(f"unknown sampler {kind!r}; expected uniform, popularity, in_batch or full")
