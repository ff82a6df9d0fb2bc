"""The model interface every part of negrec uses (trainer, evaluation, counterfactuals, CLI).

A :class:`SequentialRecommender` turns a batch of histories into user states and scores
items by inner product with its item table. Shapes and dtypes:

- histories: ``items`` [B, L] int64 (padding id ``V`` = ``num_items``), ``feedback`` [B, L]
  int8 :class:`~negrec.data.Feedback` codes (0 at padding), ``mask`` [B, L] bool (true at
  real events); left- or right-padded;
- ``encode`` -> user states [B, L, D] (float32, or the autocast dtype); the state at position
  j summarises events 0..j and predicts the next event;
- ``item_table()`` -> [V, D], the output item embeddings (without the padding row);
- ``score(states [..., D], items [..., K] or [K])`` -> logits;
- ``topk(...)`` -> the K best items for the last real position, over all V items, chunked so
  that scoring never holds more than ``max_scores`` floats at once, optionally excluding
  given items per user (e.g. the history); scored by :func:`negrec.models.scoring.catalogue_scores`,
  as offline evaluation is.

A model kind is registered in :mod:`negrec.models.registry` (``@register_model("name")``).
"""

from __future__ import annotations

import abc
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negrec.models.config import ModelConfig
from negrec.models.scoring import DEFAULT_MAX_SCORES, catalogue_scores

__all__ = ["ModelConfig", "SequentialRecommender", "last_positions"]


def last_positions(mask: Tensor) -> Tensor:
    """[B] index of the last real position of each row (0 for an empty row)."""
    L = mask.shape[1]
    idx = torch.arange(L, device=mask.device).expand_as(mask)
    return torch.where(mask, idx, torch.full_like(idx, -1)).max(dim=1).values.clamp(min=0)


class SequentialRecommender(nn.Module, abc.ABC):
    """Base class; subclasses implement :meth:`encode` and :meth:`item_table`."""

    config: ModelConfig
    num_items: int

    @property
    def pad_item(self) -> int:
        return self.num_items

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """Raises UserError when ``config`` cannot describe a model of this class (called by
        ``ModelConfig`` for its kind); any configuration by default."""

    @abc.abstractmethod
    def encode(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        """[B, L] histories -> [B, L, D] user states."""

    @abc.abstractmethod
    def item_table(self) -> Tensor:
        """[V, D] output item embeddings."""

    def score(self, states: Tensor, items: Tensor) -> Tensor:
        """Logits <state, item>: states [..., D] with items [K] -> [..., K]; with items
        [..., K] (same leading shape) -> [..., K]."""
        # F.embedding, not table[items]: its backward sums the rows of repeated items in
        # index order (advanced indexing's does so in a thread-dependent order on the CPU)
        emb = F.embedding(items, self.item_table())
        if items.dim() == 1:
            return states @ emb.T
        return (states.unsqueeze(-2) * emb).sum(-1)

    def last_state(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        """[B, D] state at each row's last real position (what predicts the next event)."""
        states = self.encode(items, feedback, mask)
        last = last_positions(mask)
        return states[torch.arange(len(last), device=states.device), last]

    @torch.no_grad()
    def topk(
        self,
        items: Tensor,
        feedback: Tensor,
        mask: Tensor,
        k: int,
        *,
        exclude: Sequence[Tensor] | None = None,
        max_scores: int = DEFAULT_MAX_SCORES,
    ) -> tuple[Tensor, Tensor]:
        """Top-``k`` (scores [B, k] float32, item ids [B, k] int64) over all V items for
        the next event of each history.

        ``exclude``: per row, a 1-D tensor of item ids that may not be recommended (e.g. the
        row's history); excluded items get -inf. Users are scored in chunks of at most
        ``max_scores // V`` rows so that no [B, V] matrix is materialised for large B.
        """
        if not 0 < k <= self.num_items:
            raise ValueError(f"topk: k must be in [1, {self.num_items}]; got {k}")
        if exclude is not None and len(exclude) != items.shape[0]:
            raise ValueError(f"topk: exclude must have one entry per row ({items.shape[0]}); "
                             f"got {len(exclude)}")
        states = self.last_state(items, feedback, mask).float()
        table = self.item_table().float()
        out_scores, out_ids = [], []
        for _, scores in catalogue_scores(states, table, exclude=exclude, max_scores=max_scores):
            top = torch.topk(scores, k, dim=1)
            out_scores.append(top.values)
            out_ids.append(top.indices)
        if not out_scores:
            return (torch.zeros(0, k, device=table.device),
                    torch.zeros(0, k, dtype=torch.long, device=table.device))
        return torch.cat(out_scores), torch.cat(out_ids)
