"""The input embedding every sequential model shares: item embedding + recency-position
embedding + feedback-code embedding and gain (when the model sees feedback) [+ cluster and
creator embeddings]. Recency position 0 is the most recent event, so left- and right-padded
batches embed identically."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negrec.data.feedback import NUM_FEEDBACK_CODES
from negrec.errors import UserError
from negrec.models.config import ModelConfig

__all__ = ["EventEmbedding"]


def _side_table_rows(values: np.ndarray) -> tuple[Tensor, int]:
    """Item -> row of a side table (cluster or creator embeddings): ``([V + 1] int64, rows)``.

    Unknown values (-1) and the padding item (index V) map to the last row, which is kept at
    zero. Computed with numpy, so that building a model on the meta device (to check a
    checkpoint's shapes without allocating) gives the same number of rows."""
    v = np.asarray(values, dtype=np.int64)
    rows = int(v.max()) + 2 if len(v) else 1
    mapping = np.concatenate([np.where(v < 0, rows - 1, v), [rows - 1]]).astype(np.int64)
    return torch.as_tensor(mapping), rows


class EventEmbedding(nn.Module):
    """[B, L] items, feedback, mask -> [B, L, D] input embeddings (zero at padding)."""

    def __init__(self, config: ModelConfig, num_items: int, item_cluster: np.ndarray | None,
                 item_creator: np.ndarray | None):
        super().__init__()
        d = config.dim
        self.config = config
        self.item = nn.Embedding(num_items + 1, d, padding_idx=num_items)
        self.position = nn.Embedding(config.max_len, d)
        self.feedback = nn.Embedding(NUM_FEEDBACK_CODES, d, padding_idx=0) if config.feedback_input else None
        if self.feedback is not None:
            # A feedback code means nothing until the data gives it a meaning: start at zero
            # (with the gains at 1, an untrained model is blind to feedback), so whatever a
            # trained model does after a dislike comes from training, not from a random
            # offset (docs/generalization.md: with random initial codes, untrained models
            # "responded" to dislikes by -2% to -41%)
            nn.init.zeros_(self.feedback.weight)
        # Per feedback code, a gain on each dimension of the item representation (init 1): lets
        # the model turn a disliked item into evidence *against* its direction (a gain near -1)
        # instead of having to learn that sign flip as an interaction deep in the network.
        self.feedback_gain = (nn.Parameter(torch.ones(NUM_FEEDBACK_CODES, d))
                              if config.feedback_input else None)
        self.gain_rate = (math.sqrt(d) if config.feedback_gain_rate is None
                          else float(config.feedback_gain_rate))
        self.cluster = self.creator = None
        if config.cluster_input:
            if item_cluster is None:
                raise UserError("model.cluster_input needs item clusters (item metadata)")
            item_to_cluster, n = _side_table_rows(item_cluster)
            self.register_buffer("item_to_cluster", item_to_cluster)
            self.cluster = nn.Embedding(n, d, padding_idx=n - 1)
            nn.init.normal_(self.cluster.weight, std=1.0 / math.sqrt(d))
            with torch.no_grad():
                self.cluster.weight[n - 1].zero_()
        if config.creator_input:
            if item_creator is None:
                raise UserError("model.creator_input needs item creators (item metadata)")
            item_to_creator, n = _side_table_rows(item_creator)
            self.register_buffer("item_to_creator", item_to_creator)
            self.creator = nn.Embedding(n, d, padding_idx=n - 1)
            nn.init.normal_(self.creator.weight, std=1.0 / math.sqrt(d))
            with torch.no_grad():
                self.creator.weight[n - 1].zero_()
        self.scale = math.sqrt(d)
        nn.init.normal_(self.item.weight, std=1.0 / self.scale)
        with torch.no_grad():
            self.item.weight[num_items].zero_()

    def item_repr(self, items: Tensor) -> Tensor:
        """An item's representation: its own embedding plus, when enabled, its cluster's and
        its creator's (shared by all items of the cluster / creator, so what is learnt about
        one item carries over to its neighbours). Used for the inputs and, tied, for scoring."""
        x = self.item(items)
        if self.cluster is not None:
            x = x + self.cluster(self.item_to_cluster[items])
        if self.creator is not None:
            x = x + self.creator(self.item_to_creator[items])
        return x

    def gains(self) -> Tensor:
        """[C, D] the feedback codes' gains: ``1 + rate * (feedback_gain - 1)`` (the stored
        parameter starts at 1). Adam moves a stored value by about ``lr`` per step whatever
        its gradient's scale, so with rate 1 flipping a gain's sign (1 -> -1, what a disliked
        item as evidence against its direction needs) takes at least ``2 / lr`` steps (1,000
        at lr 2e-3: most of a short run's training). With rate sqrt(D) the gains move at the item
        embeddings' rate relative to their size (items are stored at std 1/sqrt(D) and used
        times sqrt(D)). The gains still start at exactly 1, so an untrained model stays blind
        to feedback."""
        if self.gain_rate == 1.0:
            return self.feedback_gain  # the parameterisation of checkpoints saved before the rate
        return 1 + self.gain_rate * (self.feedback_gain - 1)

    def row_tables(self) -> list[nn.Embedding]:
        """The tables with a row per item, cluster or creator (the padding row included)."""
        return [t for t in (self.item, self.cluster, self.creator) if t is not None]

    def table(self, num_items: int) -> Tensor:
        """[V, D] representations of all items (no padding row)."""
        return self.item_repr(torch.arange(num_items, device=self.item.weight.device))

    def forward(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        L = items.shape[1]
        if L > self.config.max_len:
            raise ValueError(f"history length {L} exceeds the model's max_len {self.config.max_len}")
        x = self.item_repr(items) * self.scale
        if self.feedback_gain is not None:
            # F.embedding, not feedback_gain[feedback]: the backward of advanced indexing sums
            # the gradient rows of repeated codes in a thread-dependent order on the CPU (so
            # two identical runs could differ in the last bits); embedding's backward sums them
            # in index order. The forward values are the same.
            x = x * F.embedding(feedback.long(), self.gains())
        # recency: number of real events after this one (0 = most recent)
        recency = (mask.flip(1).long().cumsum(1).flip(1) - 1).clamp(min=0)
        x = x + self.position(recency)
        if self.feedback is not None:
            x = x + self.feedback(feedback.long())
        return x * mask.unsqueeze(-1).to(x.dtype)
