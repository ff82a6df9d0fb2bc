"""The most-popular baseline behind the :class:`SequentialRecommender` interface.

Every user gets the same ranking: items by their number of positive training events (ties
broken by the total number of training events, then by item id), so offline evaluation,
``topk`` and the counterfactual tools treat it like any trained model. A learnt model that
does not beat it has learnt nothing about the user.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from negrec.data.feedback import Feedback
from negrec.data.log import EventLog
from negrec.models.base import SequentialRecommender
from negrec.models.config import ModelConfig

__all__ = ["MostPopular"]


class MostPopular(SequentialRecommender):
    """Scores item i by a strictly decreasing function of its popularity rank.

    The state is the constant [1] and the item table [V, 1] holds the scores, so
    ``<state, item>`` is the score. Scores are ``-rank / V`` (rank 0 = most popular): all
    distinct, so evaluation never meets ties.
    """

    def __init__(self, train_log: EventLog, max_len: int = 50):
        super().__init__()
        self.config = ModelConfig(max_len=max_len, feedback_input=False)
        self.num_items = train_log.num_items
        positives = train_log.item_counts([Feedback.POSITIVE])
        events = train_log.item_counts()
        # lexsort: last key is primary -> most positives, then most events, then lowest id
        order = np.lexsort((np.arange(self.num_items), -events, -positives))
        rank = np.empty(self.num_items, dtype=np.int64)
        rank[order] = np.arange(self.num_items)
        scores = torch.from_numpy(-rank.astype(np.float32) / max(self.num_items, 1))
        self.register_buffer("scores", scores[:, None])
        # a parameter so that `next(model.parameters())` finds the device, as for learnt models
        self.anchor = nn.Parameter(torch.ones(1), requires_grad=False)

    def encode(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        return self.anchor.expand(*items.shape, 1)

    def item_table(self) -> Tensor:
        return self.scores
