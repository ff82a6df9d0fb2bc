"""Offline evaluation: full ranking of all items for each held-out event.

For each user of a :class:`~negrec.data.split.HeldOut` set, the model encodes the history that
precedes the held-out event (through the objective's own input filter), scores all V items
for the next event, and the held-out item's rank is found (items of the user's history are
excluded by default). Then, with ``hit@K = rank <= K``:

- over users whose held-out event is **positive**: Recall@K (= HR@K), NDCG@K
  (``1 / log2(rank + 1)`` when hit), MRR (``1 / rank``);
- over users whose held-out event is a **dislike**: dislike exposure@K (how often the
  disliked item is in the top K; lower is better) and the gap HR_pos@K - HR_neg@K (PNFRec's
  offline negative-aware metric);
- users with a neutral or skip held-out event count in neither.

Every figure comes with the number of users behind it and a bootstrap 95% interval over users
(:mod:`negrec.eval.stats`). Histories are batched by the collator and scored against the whole
catalogue by :func:`negrec.models.scoring.catalogue_blocks`, as recommendations are.

:func:`evaluate` takes any :class:`~negrec.eval.recommender.Recommender`. A negrec model (its
adapter, :func:`~negrec.eval.recommender.from_model`) is ranked in full as above. Any other
recommender is known only by its top-K list, K the largest cut-off: the held-out item's rank is
its position in that list, and an item beyond it is a miss (rank K + 1). Recall, NDCG, dislike
exposure and the HR gap at every cut-off <= K are then exactly what a full ranking would give;
MRR becomes MRR@K (an item beyond the list counts 0 instead of 1 / rank), and the result says
which ranking it had (``ranking``: ``full`` or ``top-K``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from negrec.data.collate import Collator
from negrec.data.feedback import Feedback
from negrec.data.split import HeldOut
from negrec.eval.recommender import ModelRecommender, Recommender, recommend_batched
from negrec.eval.stats import bootstrap_ci, difference_ci
from negrec.models.base import SequentialRecommender
from negrec.models.inputs import ModelInputs
from negrec.models.scoring import DEFAULT_MAX_SCORES, catalogue_blocks

__all__ = ["EvalResult", "evaluate", "held_out_ranks", "top_k_ranks"]


@torch.no_grad()
def held_out_ranks(model: SequentialRecommender, held: HeldOut, inputs: ModelInputs, *,
                   exclude_history: bool = True, batch_size: int = 512,
                   max_scores: int = DEFAULT_MAX_SCORES) -> np.ndarray:
    """[M] 1-based rank of each held-out item among all items (ties count against it:
    rank = 1 + number of other candidates scoring at least as high), for histories as
    ``inputs`` lets the model see them."""
    model.eval()
    device = next(model.parameters()).device
    collator = Collator(held.history, inputs.collate_config(model.config.max_len),
                        with_targets=False)
    table = model.item_table().float()
    ranks = np.empty(len(held), dtype=np.int64)
    hist = held.history
    for b0 in range(0, len(held), batch_size):
        rows = np.arange(b0, min(b0 + batch_size, len(held)))
        batch = collator(rows).to(device)
        states = model.last_state(batch.input_items, batch.input_feedback, batch.mask).float()
        # copies of one history each: a split's histories are slices of the log's arrays,
        # read-only for an opened event store (torch warns on a tensor of one)
        exclude = [np.array(hist.user_events(int(r))[0]) for r in rows] if exclude_history \
            else None
        targets = torch.as_tensor(held.items[rows], device=device)
        target_score = states.mul(table[targets]).sum(-1, keepdim=True)
        above = torch.zeros(len(rows), dtype=torch.long, device=device)
        for sl, items, scores in catalogue_blocks(states, table, exclude=exclude,
                                                  max_scores=max_scores):
            tgt = targets[sl]
            own = torch.nonzero((tgt >= items.start) & (tgt < items.stop))[:, 0]
            scores[own, tgt[own] - items.start] = float("-inf")  # not counted against itself
            above[sl] += (scores >= target_score[sl]).sum(1)
        ranks[b0:b0 + len(rows)] = above.cpu().numpy() + 1
    return ranks


def top_k_ranks(recommender: Recommender, held: HeldOut, depth: int) -> np.ndarray:
    """[M] 1-based position of each held-out item in ``recommender``'s top-``depth`` list for the
    history before it, ``depth + 1`` where the list does not hold it (a miss at every cut-off
    <= ``depth``)."""
    hist = held.history
    histories = [hist.user_events(u) for u in range(len(held))]
    top = recommend_batched(recommender, histories, depth, hist.num_items)
    found = top == held.items[:, None]
    return np.where(found.any(1), found.argmax(1) + 1, depth + 1).astype(np.int64)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    counts: dict[str, int]
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    ranking: str = "full"  # "full", or "top-K" for a recommender known by its top-K list

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "ci95": {k: list(v) for k, v in self.ci.items()},
                "counts": self.counts, "ranking": self.ranking}

    def flat(self) -> dict[str, float]:
        """metrics plus ``<name>_ci_low`` / ``<name>_ci_high`` and the user counts."""
        out = dict(self.metrics)
        for k, (lo, hi) in self.ci.items():
            out[f"{k}_ci_low"], out[f"{k}_ci_high"] = lo, hi
        out.update(self.counts)
        return out


def evaluate(recommender: Recommender, held: HeldOut, *, ks: tuple[int, ...] = (10, 20),
             bootstrap: int = 1000, seed: int = 0) -> EvalResult:
    """All offline metrics of one held-out set for ``recommender`` (a negrec model through
    :func:`~negrec.eval.recommender.from_model`, ranked in full, or any recommender, ranked by
    its top-``max(ks)`` list); see the module docstring."""
    if isinstance(recommender, ModelRecommender):
        ranks = held_out_ranks(recommender.model, held, recommender.inputs,
                               exclude_history=recommender.exclude_history)
        depth, ranking = None, "full"
    else:
        depth = max(ks)
        ranks, ranking = top_k_ranks(recommender, held, depth), f"top-{depth}"
    pos = held.feedback == Feedback.POSITIVE
    neg = held.feedback == Feedback.DISLIKE
    metrics: dict[str, float] = {}
    ci: dict[str, tuple[float, float]] = {}
    per_user: dict[str, np.ndarray] = {"rank": ranks}

    def add(name: str, values: np.ndarray) -> None:
        metrics[name] = float(values.mean()) if len(values) else math.nan
        ci[name] = bootstrap_ci(values, resamples=bootstrap, seed=seed)
        per_user[name] = values

    r_pos, r_neg = ranks[pos], ranks[neg]
    for k in ks:
        hit = (r_pos <= k).astype(np.float64)
        add(f"recall@{k}", hit)
        add(f"ndcg@{k}", np.where(r_pos <= k, 1.0 / np.log2(r_pos + 1.0), 0.0))
        add(f"dislike_exposure@{k}", (r_neg <= k).astype(np.float64))
        metrics[f"hr_gap@{k}"] = metrics[f"recall@{k}"] - metrics[f"dislike_exposure@{k}"]
        # the gap's interval: independent bootstrap of the two user groups
        ci[f"hr_gap@{k}"] = difference_ci((r_pos <= k).astype(np.float64),
                                          (r_neg <= k).astype(np.float64),
                                          resamples=bootstrap, seed=seed + 1)
    # MRR over a top-K list: 1 / rank within it, 0 beyond it (MRR@K)
    add("mrr", np.where(r_pos <= depth, 1.0 / r_pos, 0.0) if depth is not None else 1.0 / r_pos)
    counts = {"users": int(len(held)), "positive_users": int(pos.sum()),
              "dislike_users": int(neg.sum()), "other_users": int((~pos & ~neg).sum())}
    return EvalResult(metrics=metrics, ci=ci, counts=counts, per_user=per_user, ranking=ranking)
