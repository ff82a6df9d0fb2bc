"""Recommendations for ad-hoc histories, through what a model's objective lets it see.

Histories become an :class:`~negrec.data.log.EventLog` (one row each) and are batched by the
collator, as held-out histories are in evaluation: one inference batching path.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from negrec.data.collate import Collator
from negrec.data.feedback import Feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.models.base import SequentialRecommender
from negrec.models.inputs import ModelInputs

__all__ = ["History", "history_log", "recommend"]

#: One history: (dense item ids, feedback codes), oldest first.
History = tuple[Sequence[int], Sequence[int]]


def history_log(histories: Sequence[History], num_items: int) -> EventLog:
    """The histories as an EventLog over ``num_items`` items, row b holding history b in the
    given order (ValueError for an item outside ``[0, num_items)`` or a code that is not a
    feedback type)."""
    lengths = np.zeros(len(histories), dtype=np.int64)
    for b, (items, codes) in enumerate(histories):
        if len(items) != len(codes):
            raise ValueError(f"history {b}: {len(items)} items but {len(codes)} feedback codes")
        lengths[b] = len(items)
    offsets = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.fromiter((i for h in histories for i in h[0]), np.int64, int(offsets[-1]))
    codes = np.fromiter((int(f) for h in histories for f in h[1]), np.int8, int(offsets[-1]))
    return EventLog(offsets=offsets, items=items, timestamps=np.zeros(len(items), np.int64),
                    feedback=codes, user_ids=np.arange(len(histories)),
                    item_meta=ItemMeta.anonymous(np.arange(num_items)))


def recommend(model: SequentialRecommender, inputs: ModelInputs, histories: Sequence[History],
              k: int = 10, *, exclude_history: bool = True, filter_disliked: bool = False,
              filter_disliked_creators: bool = False, item_meta: ItemMeta | None = None,
              batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (item ids [B, k] int64, scores [B, k] float32) for each history, as
    ``inputs`` lets the model see it (the last ``max_len`` visible events).

    ``exclude_history``: never recommend an item of the history (whatever its feedback, even if
    the model does not see it). ``filter_disliked``: never recommend a disliked item;
    ``filter_disliked_creators``: nor any item by the creator of a disliked item (needs
    ``item_meta`` with creators)."""
    if filter_disliked_creators and (item_meta is None or item_meta.creator is None):
        raise ValueError("filter_disliked_creators needs item metadata with creators")
    device = next(model.parameters()).device
    creators_items: dict[int, np.ndarray] = {}
    if filter_disliked_creators:
        for c in np.unique(item_meta.creator[item_meta.creator >= 0]):
            creators_items[int(c)] = np.flatnonzero(item_meta.creator == c)
    log = history_log(histories, model.num_items)
    collator = Collator(log, inputs.collate_config(model.config.max_len), with_targets=False)
    out_ids = np.zeros((len(histories), k), dtype=np.int64)
    out_scores = np.zeros((len(histories), k), dtype=np.float32)
    for b0 in range(0, len(histories), batch_size):
        rows = np.arange(b0, min(b0 + batch_size, len(histories)))
        batch = collator(rows).to(device)
        exclude = [_excluded(log, int(r), exclude_history, filter_disliked,
                             filter_disliked_creators, item_meta, creators_items) for r in rows]
        scores, ids = model.topk(batch.input_items, batch.input_feedback, batch.mask, k,
                                 exclude=exclude)
        out_ids[rows] = ids.cpu().numpy()
        out_scores[rows] = scores.cpu().numpy()
    return out_ids, out_scores


def _excluded(log: EventLog, row: int, history: bool, disliked: bool, disliked_creators: bool,
              item_meta: ItemMeta | None, creators_items: dict[int, np.ndarray]) -> torch.Tensor:
    """The items history ``row`` may not be recommended: its own items, its disliked items, the
    items of the creators of its disliked items, as asked."""
    items, codes = log.user_events(row)
    ex = [items] if history else []
    bad = items[codes == Feedback.DISLIKE]
    if disliked:
        ex.append(bad)
    if disliked_creators:
        for c in np.unique(item_meta.creator[bad]):
            if c >= 0:
                ex.append(creators_items[int(c)])
    return torch.as_tensor(np.concatenate(ex) if ex else np.zeros(0, np.int64))
