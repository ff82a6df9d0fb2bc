"""The model interface every part of negrec uses (trainer, evaluation, counterfactuals, CLI).

A :class:`SequentialRecommender` turns a batch of histories into user states and scores
items by inner product with its item table. Shapes and dtypes:

- histories: ``items`` [B, L] int64 (padding id ``V`` = ``num_items``), ``feedback`` [B, L]
  int8 :class:`~negrec.data.Feedback` codes (0 at padding), ``mask`` [B, L] bool (true at
  real events); left- or right-padded;
- ``encode`` -> user states [B, L, D] (float32, or the autocast dtype); the state at position
  j summarises events 0..j and predicts the next event;
- ``item_table()`` -> [V, D], the output item embeddings (without the padding row); D is the
  state's width, which a model may extend beyond ``dim`` with columns of its own (the GRU's
  ``count_prior``: D = dim + 1 + C, or dim + C without its item score);
- ``item_embeddings(ids, ...)`` -> the rows of ``item_table()`` for each id tensor, computing
  only the distinct rows they need (``item_subtable``: those rows, and where each id is among
  them; what a sampled softmax uses: a step then costs nothing per catalogue item); same
  values and gradients as ``F.embedding(ids, item_table())``;
- ``row_tables()`` -> the embedding tables with one row per item, cluster or creator (the
  trainer may give them sparse gradients: :mod:`negrec.train.optim`);
- ``score(states [..., D], items [..., K] or [K])`` -> logits;
- ``topk(...)`` -> the K best items for the last real position, over all V items, chunked so
  that scoring never holds more than ``max_scores`` floats at once, optionally excluding
  given items per user (e.g. the history); scored by :func:`negrec.models.scoring.catalogue_blocks`,
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
from negrec.models.scoring import DEFAULT_MAX_SCORES, catalogue_blocks

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

    #: Whether the class implements ``model.count_prior`` (an automatic count prior is on only
    #: for such a class).
    has_count_prior: bool = False

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

    def item_rows(self, rows: Tensor) -> Tensor:
        """[R] item ids -> [R, D] their rows of :meth:`item_table`. This default gathers them
        from the whole table; a model whose table is built per item (tied input embeddings,
        side tables) computes only these rows."""
        return F.embedding(rows, self.item_table())

    def item_subtable(self, *ids: Tensor, dtype: torch.dtype | None = None
                      ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """For int64 tensors of item ids [...]: ``(rows, at)``, ``rows`` [R, D] the rows of
        :meth:`item_table` of the R distinct ids (sorted; cast to ``dtype`` when given) and, for
        each id tensor, ``at`` [...] int64: the position of each of its ids in ``rows``.

        ``F.embedding(at[i], rows)`` equals ``F.embedding(ids[i], item_table().to(dtype))``,
        values and gradients bit for bit: the distinct rows are computed by :meth:`item_rows`
        in id order, and ``F.embedding``'s backward sums the gradients of a repeated id in index
        order, as it does on the whole table; a row's gradient then reaches the parameters once,
        as the whole table's row does. So a sampled softmax costs no work per catalogue item."""
        flat = torch.cat([i.reshape(-1) for i in ids])
        distinct, inverse = torch.unique(flat, return_inverse=True)
        rows = self.item_rows(distinct)
        if dtype is not None:
            rows = rows.to(dtype)
        parts = inverse.split([i.numel() for i in ids])
        return rows, tuple(part.view(i.shape) for part, i in zip(parts, ids))

    def item_embeddings(self, *ids: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, ...]:
        """For each int64 tensor of item ids [...], its rows of :meth:`item_table` [..., D]
        (cast to ``dtype`` when given), computing each distinct row once
        (:meth:`item_subtable`): equal to ``F.embedding(ids_i, item_table().to(dtype))``,
        values and gradients bit for bit."""
        rows, at = self.item_subtable(*ids, dtype=dtype)
        return tuple(F.embedding(a, rows) for a in at)

    def row_tables(self) -> list[nn.Embedding]:
        """The embedding tables with one row per item, cluster or creator: those whose cost
        grows with the catalogue (none by default)."""
        return []

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
        candidates: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Top-``k`` (scores [B, k] float32, item ids [B, k] int64) over all V items (or over
        ``candidates``, distinct item ids [C]) for the next event of each history.

        ``exclude``: per row, a 1-D tensor of item ids that may not be recommended (e.g. the
        row's history); excluded items get -inf. Users and items are scored in blocks of at
        most ``max_scores`` scores (:func:`~negrec.models.scoring.catalogue_blocks`), each
        block's best k merged into the row's, so no [B, V] matrix is materialised; with
        ``candidates`` only their rows of the item table are computed.
        """
        n = self.num_items if candidates is None else len(candidates)
        if not 0 < k <= n:
            raise ValueError(f"topk: k must be in [1, {n}]; got {k}")
        if exclude is not None and len(exclude) != items.shape[0]:
            raise ValueError(f"topk: exclude must have one entry per row ({items.shape[0]}); "
                             f"got {len(exclude)}")
        states = self.last_state(items, feedback, mask).float()
        if candidates is None:
            table = self.item_table().float()
        else:
            candidates = torch.as_tensor(candidates, device=states.device)
            if len(torch.unique(candidates)) != len(candidates):
                raise ValueError("topk: candidates must be distinct item ids")
            table = self.item_rows(candidates).float()
            if exclude is not None:
                exclude = [_positions(candidates, torch.as_tensor(e, device=states.device))
                           for e in exclude]
        out_scores, out_ids = [], []
        best = best_ids = None  # the best k of the row block's catalogue blocks so far
        for _, block, scores in catalogue_blocks(states, table, exclude=exclude,
                                                 max_scores=max_scores):
            top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            values, ids = top.values, top.indices + block.start
            if block.start > 0:  # merge with the best of the row's earlier blocks
                values, ids = torch.cat([best, values], 1), torch.cat([best_ids, ids], 1)
                top = torch.topk(values, min(k, values.shape[1]), dim=1)
                values, ids = top.values, ids.gather(1, top.indices)
            best, best_ids = values, ids
            if block.stop == table.shape[0]:
                out_scores.append(best)
                out_ids.append(best_ids)
        if not out_scores:
            return (torch.zeros(0, k, device=table.device),
                    torch.zeros(0, k, dtype=torch.long, device=table.device))
        ids = torch.cat(out_ids)
        return torch.cat(out_scores), ids if candidates is None else candidates[ids]


def _positions(candidates: Tensor, ids: Tensor) -> Tensor:
    """The positions in ``candidates`` [C] of those of ``ids`` that are candidates."""
    order = torch.argsort(candidates)
    at = torch.searchsorted(candidates[order], ids).clamp(max=len(candidates) - 1)
    found = candidates[order][at] == ids
    return order[at[found]]
