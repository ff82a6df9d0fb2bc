"""Hand-built models whose recommendations are known exactly (for evaluation tests)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from negrec.models.base import ModelConfig, SequentialRecommender


class ScoreTableModel(SequentialRecommender):
    """Scores are ``scores[last item of the history, candidate]`` (a fixed [V + 1, V] table;
    row V is used for empty histories). Feedback codes are ignored unless ``by_feedback`` gives
    a separate table per code: ``scores[code][last item, candidate]``."""

    def __init__(self, scores: Tensor, max_len: int = 20, by_feedback: dict[int, Tensor] | None = None):
        super().__init__()
        V = scores.shape[1]
        self.num_items = V
        self.config = ModelConfig(dim=V, max_len=max_len, dropout=0.0, num_heads=1)
        self.scores = scores.float()
        self.by_feedback = by_feedback
        self._dummy = nn.Parameter(torch.zeros(1))  # so the model has a device

    def encode(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        # the "state" of a position is the score row of its item (one-hot scoring table)
        table = self.scores
        if self.by_feedback is None:
            return table[items] + 0 * self._dummy
        out = table[items].clone()
        for code, t in self.by_feedback.items():
            sel = feedback.long() == code
            out[sel] = t.float()[items[sel]]
        return out + 0 * self._dummy

    def item_table(self) -> Tensor:
        return torch.eye(self.num_items)
