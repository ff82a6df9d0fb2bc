"""The most-popular baseline."""

from __future__ import annotations

import numpy as np
import torch

from negrec.data import Feedback, leave_one_out
from negrec.eval.metrics import evaluate
from negrec.eval.recommender import from_model
from negrec.train.objectives import OBJECTIVES
from negrec.models.popularity import MostPopular
from negrec.sim import Simulator, preset


def test_most_popular_ranks_by_positive_events_and_ignores_the_user():
    log, _ = Simulator(preset("default", num_users=300, events_per_user=30), seed=1).generate()
    split = leave_one_out(log)
    model = MostPopular(split.train)
    counts = split.train.item_counts([Feedback.POSITIVE])
    items = np.array([[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]])
    _, top = model.topk(torch.as_tensor(items), torch.as_tensor(np.ones((2, 5), np.int8)),
                        torch.as_tensor(items != model.pad_item), 10)
    assert (top[0] == top[1]).all()
    assert counts[top[0].numpy()].tolist() == sorted(counts[top[0].numpy()].tolist(), reverse=True)
    assert counts[int(top[0, 0])] == counts.max()
    # the evaluation machinery accepts it like a trained model, and it is far from useless
    res = evaluate(from_model(model, OBJECTIVES["positive_only"].inputs), split.test, ks=(10,), bootstrap=0)
    assert res.metrics["recall@10"] > 10 / log.num_items
