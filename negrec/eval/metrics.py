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

Every figure comes with the number of users behind it and a bootstrap 95% interval over users.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from negrec.data.collate import Collator
from negrec.data.feedback import Feedback
from negrec.data.split import HeldOut
from negrec.models.base import SequentialRecommender
from negrec.models.objectives import Objective

__all__ = ["EvalResult", "bootstrap_ci", "evaluate", "held_out_ranks"]


@torch.no_grad()
def held_out_ranks(model: SequentialRecommender, held: HeldOut, objective: Objective, *,
                   exclude_history: bool = True, batch_size: int = 512,
                   max_scores: int = 1 << 24) -> np.ndarray:
    """[M] 1-based rank of each held-out item among all items (ties count against it:
    rank = 1 + number of other candidates scoring at least as high)."""
    model.eval()
    device = next(model.parameters()).device
    collator = Collator(held.history, objective.collate_config(model.config.max_len),
                        with_targets=False)
    table = model.item_table().float()
    V = table.shape[0]
    ranks = np.empty(len(held), dtype=np.int64)
    hist = held.history
    for b0 in range(0, len(held), batch_size):
        rows = np.arange(b0, min(b0 + batch_size, len(held)))
        batch = collator(rows).to(device)
        states = model.last_state(batch.input_items, batch.input_feedback, batch.mask).float()
        targets = torch.as_tensor(held.items[rows], device=device)
        chunk = max(1, max_scores // V)
        for c0 in range(0, len(rows), chunk):
            sl = slice(c0, c0 + chunk)
            scores = states[sl] @ table.T
            if exclude_history:
                r_idx, i_idx = [], []
                for j, row in enumerate(rows[sl]):
                    items = hist.items[hist.user_slice(int(row))]
                    r_idx.append(np.full(len(items), j))
                    i_idx.append(items)
                if r_idx:
                    r_t = torch.as_tensor(np.concatenate(r_idx), device=device)
                    i_t = torch.as_tensor(np.concatenate(i_idx), device=device)
                    scores[r_t, i_t] = float("-inf")
            tgt = targets[sl]
            target_score = states[sl].mul(table[tgt]).sum(-1, keepdim=True)
            scores[torch.arange(len(tgt), device=device), tgt] = float("-inf")
            ranks[b0 + c0: b0 + c0 + len(tgt)] = (scores >= target_score).sum(1).cpu().numpy() + 1
    return ranks


def bootstrap_ci(values: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or resamples <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (resamples, len(values)))
    means = values[idx].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


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


def evaluate(model: SequentialRecommender, held: HeldOut, objective: Objective, *,
             ks: tuple[int, ...] = (10, 20), exclude_history: bool = True,
             bootstrap: int = 1000, seed: int = 0, batch_size: int = 512) -> EvalResult:
    """All offline metrics of one held-out set; see the module docstring."""
    ranks = held_out_ranks(model, held, objective, exclude_history=exclude_history,
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
        if len(r_pos) and len(r_neg) and bootstrap > 0:
            rng = np.random.default_rng(seed + 1)
            a = (r_pos <= k)[rng.integers(0, len(r_pos), (bootstrap, len(r_pos)))].mean(1)
            b = (r_neg <= k)[rng.integers(0, len(r_neg), (bootstrap, len(r_neg)))].mean(1)
            ci[f"hr_gap@{k}"] = (float(np.quantile(a - b, 0.025)), float(np.quantile(a - b, 0.975)))
        else:
            ci[f"hr_gap@{k}"] = (math.nan, math.nan)
    add("mrr", 1.0 / r_pos if len(r_pos) else np.zeros(0))
    counts = {"users": int(len(held)), "positive_users": int(pos.sum()),
              "dislike_users": int(neg.sum()), "other_users": int((~pos & ~neg).sum())}
    return EvalResult(metrics=metrics, ci=ci, counts=counts, per_user=per_user)
