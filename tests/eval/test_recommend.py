"""Recommendations for ad-hoc histories (filters, exclusions), through the collator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negrec.eval.recommend import recommend
from negrec.train.objectives import OBJECTIVES
from toy_models import ScoreTableModel

V = 6


def test_recommend_filters():
    scores = torch.arange(V, dtype=torch.float32).expand(V + 1, V).clone()
    model = ScoreTableModel(scores)
    from negrec.data.log import ItemMeta

    meta = ItemMeta(raw_ids=np.arange(V), cluster=np.zeros(V, np.int32), cluster_names=["c"],
                    creator=np.array([0, 0, 1, 1, 2, 2], np.int32), creator_names=["a", "b", "c"])
    hist = [([0, 4], [1, 4])]  # liked item 0, disliked item 4 (creator 2 also made item 5)
    obj = OBJECTIVES["input_ntr"].inputs
    ids, _ = recommend(model, obj, hist, 3)
    assert ids[0].tolist() == [5, 3, 2]  # history excluded
    ids, _ = recommend(model, obj, hist, 3, exclude_history=False)
    assert ids[0].tolist() == [5, 4, 3]
    ids, _ = recommend(model, obj, hist, 3, exclude_history=False, filter_disliked=True)
    assert ids[0].tolist() == [5, 3, 2]
    ids, _ = recommend(model, obj, hist, 3, filter_disliked_creators=True, item_meta=meta)
    assert ids[0].tolist() == [3, 2, 1]


def test_histories_are_batched_by_the_collator_as_the_model_sees_them():
    """The model gets the last max_len events its objective lets it see, left-padded: the
    collator's inference rows of the same histories."""
    from negrec.data import Collator

    from negrec.eval.recommend import history_log

    seen = []

    class Recording(ScoreTableModel):
        def encode(self, items, feedback, mask):
            seen.append((items.clone(), feedback.clone(), mask.clone()))
            return super().encode(items, feedback, mask)

    model = Recording(torch.rand(V + 1, V, generator=torch.Generator().manual_seed(0)), max_len=3)
    hist = [([0, 1, 2, 3, 4], [1, 4, 1, 3, 4]), ([5], [4]), ([], [])]
    inputs = OBJECTIVES["filter_history"].inputs  # dislikes hidden
    recommend(model, inputs, hist, 2)
    items, feedback, mask = seen[0]
    assert items.tolist() == [[0, 2, 3], [V, V, V], [V, V, V]]
    assert feedback.tolist() == [[1, 1, 3], [0, 0, 0], [0, 0, 0]]
    expected = Collator(history_log(hist, V), inputs.collate_config(3), with_targets=False)(
        np.arange(3))
    assert torch.equal(items, expected.input_items) and torch.equal(mask, expected.mask)


def test_bad_histories_are_refused():
    from negrec.eval.recommend import history_log

    with pytest.raises(ValueError, match="history 0: 2 items but 1 feedback codes"):
        history_log([([0, 1], [1])], V)
    with pytest.raises(ValueError, match=r"item ids must be in \[0, 6\)"):
        history_log([([0, 6], [1, 1])], V)
    with pytest.raises(ValueError, match="feedback codes must be 1..4"):
        history_log([([0], [0])], V)
