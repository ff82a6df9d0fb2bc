"""Recommendations for ad-hoc histories, through a model's own objective (input filter)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from negrec.data.feedback import Feedback
from negrec.data.log import ItemMeta
from negrec.models.base import SequentialRecommender
from negrec.models.objectives import Objective

__all__ = ["history_tensors", "recommend"]


def history_tensors(histories: Sequence[tuple[Sequence[int], Sequence[int]]], objective: Objective,
                    max_len: int, pad_item: int, device: torch.device | str = "cpu"
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """[(items, feedback codes), ...] -> left-padded (items, feedback, mask) [B, max_len] of
    the last ``max_len`` events the objective lets the model see (as the collator does)."""
    allowed = {int(f) for f in objective.input_feedback}
    B = len(histories)
    items = np.full((B, max_len), pad_item, dtype=np.int64)
    fb = np.zeros((B, max_len), dtype=np.int8)
    for b, (its, fbs) in enumerate(histories):
        if len(its) != len(fbs):
            raise ValueError(f"history {b}: {len(its)} items but {len(fbs)} feedback codes")
        kept = [(i, f) for i, f in zip(its, fbs) if int(f) in allowed][-max_len:]
        if kept:
            items[b, max_len - len(kept):] = [i for i, _ in kept]
            fb[b, max_len - len(kept):] = [f for _, f in kept]
    items_t = torch.from_numpy(items).to(device)
    return items_t, torch.from_numpy(fb).to(device), items_t != pad_item


def recommend(model: SequentialRecommender, objective: Objective,
              histories: Sequence[tuple[Sequence[int], Sequence[int]]], k: int = 10, *,
              exclude_history: bool = True, filter_disliked: bool = False,
              filter_disliked_creators: bool = False, item_meta: ItemMeta | None = None,
              batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (item ids [B, k] int64, scores [B, k] float32) for each history.

    ``exclude_history``: never recommend an item of the history (whatever its feedback, even if
    the objective hides it from the model). ``filter_disliked``: never recommend a disliked
    item; ``filter_disliked_creators``: nor any item by the creator of a disliked item (needs
    ``item_meta`` with creators)."""
    if filter_disliked_creators and (item_meta is None or item_meta.creator is None):
        raise ValueError("filter_disliked_creators needs item metadata with creators")
    device = next(model.parameters()).device
    creators_items: dict[int, np.ndarray] = {}
    if filter_disliked_creators:
        for c in np.unique(item_meta.creator[item_meta.creator >= 0]):
            creators_items[int(c)] = np.flatnonzero(item_meta.creator == c)
    out_ids = np.zeros((len(histories), k), dtype=np.int64)
    out_scores = np.zeros((len(histories), k), dtype=np.float32)
    for b0 in range(0, len(histories), batch_size):
        chunk = histories[b0:b0 + batch_size]
        items, fb, mask = history_tensors(chunk, objective, model.config.max_len, model.pad_item,
                                          device)
        exclude = []
        for its, fbs in chunk:
            its = np.asarray(its, dtype=np.int64)
            fbs = np.asarray(fbs)
            ex = [its] if exclude_history else []
            disliked = its[fbs == Feedback.DISLIKE]
            if filter_disliked:
                ex.append(disliked)
            if filter_disliked_creators:
                for c in np.unique(item_meta.creator[disliked]):
                    if c >= 0:
                        ex.append(creators_items[int(c)])
            exclude.append(torch.as_tensor(np.concatenate(ex) if ex else np.zeros(0, np.int64)))
        scores, ids = model.topk(items, fb, mask, k, exclude=exclude)
        out_ids[b0:b0 + len(chunk)] = ids.cpu().numpy()
        out_scores[b0:b0 + len(chunk)] = scores.cpu().numpy()
    return out_ids, out_scores
