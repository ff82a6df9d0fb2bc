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
  given items per user (e.g. the history).
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negrec.errors import UserError

__all__ = ["ModelConfig", "SequentialRecommender", "last_positions"]


@dataclass
class ModelConfig:
    """Architecture of a sequential recommender.

    - ``kind``: ``"sasrec"`` (causal transformer) or ``"gru"``;
    - ``dim``: D; ``num_layers``; ``num_heads`` (sasrec); ``dropout``; ``max_len``: L;
    - ``feedback_input``: add a feedback-code embedding to each event (off for the
      ``positive_only`` and ``filter_history`` objectives: the model cannot see feedback);
    - ``cluster_input`` / ``creator_input``: add the item's cluster / creator embedding
      (needs item metadata);
    - ``tied``: score with the input item table (else a separate output table).
    """

    kind: str = "sasrec"
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    feedback_input: bool = True
    cluster_input: bool = False
    creator_input: bool = False
    tied: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("sasrec", "gru"):
            raise UserError(f"model.kind must be 'sasrec' or 'gru'; got {self.kind!r}")
        for name in ("dim", "num_layers", "num_heads", "max_len"):
            if getattr(self, name) <= 0:
                raise UserError(f"model.{name} must be > 0; got {getattr(self, name)}")
        if self.kind == "sasrec" and self.dim % self.num_heads:
            raise UserError(f"model.dim ({self.dim}) must be divisible by num_heads "
                            f"({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model.dropout must be in [0, 1); got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


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
        max_scores: int = 1 << 24,
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
        V = table.shape[0]
        chunk = max(1, max_scores // V)
        out_scores, out_ids = [], []
        for r0 in range(0, states.shape[0], chunk):
            s = states[r0:r0 + chunk] @ table.T
            if exclude is not None:
                rows, cols = [], []
                for j, ex in enumerate(exclude[r0:r0 + chunk]):
                    ex = torch.as_tensor(ex, device=s.device)
                    ex = ex[(ex >= 0) & (ex < V)]
                    rows.append(torch.full_like(ex, j))
                    cols.append(ex)
                if rows:
                    s[torch.cat(rows), torch.cat(cols)] = float("-inf")
            top = torch.topk(s, k, dim=1)
            out_scores.append(top.values)
            out_ids.append(top.indices)
        if not out_scores:
            return (torch.zeros(0, k, device=table.device),
                    torch.zeros(0, k, dtype=torch.long, device=table.device))
        return torch.cat(out_scores), torch.cat(out_ids)
