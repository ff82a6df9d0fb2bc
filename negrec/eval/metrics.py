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
catalogue by :func:`negrec.models.scoring.catalogue_scores`, as recommendations are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from negrec.data.collate import Collator
from negrec.data.feedback import Feedback
from negrec.data.split import HeldOut
from negrec.eval.stats import bootstrap_ci, difference_ci
from negrec.models.base import SequentialRecommender
from negrec.models.inputs import ModelInputs
from negrec.models.scoring import DEFAULT_MAX_SCORES, catalogue_scores

__all__ = ["EvalResult", "evaluate", "held_out_ranks"]


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
        exclude = [hist.items[hist.user_slice(int(r))] for r in rows] if exclude_history else None
        for sl, scores in catalogue_scores(states, table, exclude=exclude, max_scores=max_scores):
            tgt = torch.as_tensor(held.items[rows[sl]], device=device)
            target_score = states[sl].mul(table[tgt]).sum(-1, keepdim=True)
            scores[torch.arange(len(tgt), device=device), tgt] = float("-inf")
            ranks[b0 + sl.start: b0 + sl.stop] = (scores >= target_score).sum(1).cpu().numpy() + 1
    return ranks


@dataclass
class EvalResult:
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    counts: dict[str, int]
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "ci95": {k: list(v) for k, v in self.ci.items()},
                "counts": self.counts}

    def flat(self) -> dict[str, float]:
        """metrics plus ``<name>_ci_low`` / ``<name>_ci_high`` and the user counts."""
        out = dict(self.metrics)
        for k, (lo, hi) in self.ci.items():
            out[f"{k}_ci_low"], out[f"{k}_ci_high"] = lo, hi
        out.update(self.counts)
        return out


def evaluate(model: SequentialRecommender, held: HeldOut, inputs: ModelInputs, *,
             ks: tuple[int, ...] = (10, 20), exclude_history: bool = True,
             bootstrap: int = 1000, seed: int = 0, batch_size: int = 512) -> EvalResult:
    """All offline metrics of one held-out set, for histories as ``inputs`` lets the model see
    them; see the module docstring."""
    ranks = held_out_ranks(model, held, inputs, exclude_history=exclude_history,
                           batch_size=batch_size)
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
    add("mrr", 1.0 / r_pos if len(r_pos) else np.zeros(0))
    counts = {"users": int(len(held)), "positive_users": int(pos.sum()),
              "dislike_users": int(neg.sum()), "other_users": int((~pos & ~neg).sum())}
    return EvalResult(metrics=metrics, ci=ci, counts=counts, per_user=per_user)
