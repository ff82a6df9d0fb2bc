"""Closed-loop simulation: simulated users (the simulator's ground-truth tastes) interact for T
steps with a trained model's recommendations.

Each step the model shows every user its top ``slate_size`` unseen items for the user's
history so far; the user takes one (the simulator's slate choice), responds (its behaviour
model), and the event joins the history. Reported per model, with bootstrap 95% intervals over
users: the positive, neutral, skip and dislike rates, and the rates of *repeated* dislikes: a
dislike of an item whose creator (or cluster) the user had already disliked in this session
(the offline analogues of the reference paper's live metrics). Runs of different models with
the same ``seed`` use the same users, so their differences are paired.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from negrec.data.feedback import Feedback
from negrec.eval.counterfactual import Estimate, ratio_of_means_ci, simulate_step
from negrec.eval.metrics import bootstrap_ci
from negrec.models.base import SequentialRecommender
from negrec.models.objectives import Objective

__all__ = ["ClosedLoopResult", "closed_loop", "paired_relative_change"]

RATES = ("positive_rate", "neutral_rate", "skip_rate", "dislike_rate",
         "repeated_dislike_creator_rate", "repeated_dislike_cluster_rate")


@dataclass
class ClosedLoopResult:
    num_users: int
    steps: int
    rates: dict[str, Estimate]
    per_user: dict[str, np.ndarray] = field(repr=False)  # rate name -> [U]
    per_step: dict[str, np.ndarray] = field(repr=False)  # rate name -> [T] (over users)

    def to_dict(self) -> dict:
        return {"num_users": self.num_users, "steps": self.steps,
                "rates": {k: asdict(v) for k, v in self.rates.items()},
                "per_step": {k: v.tolist() for k, v in self.per_step.items()}}


def closed_loop(model: SequentialRecommender, objective: Objective, simulator, *, num_users: int,
                steps: int, seed: int, slate_size: int = 10, bootstrap: int = 1000,
                progress: bool = False) -> ClosedLoopResult:
    state = simulator.spawn_users(num_users, seed)
    rng = np.random.default_rng([simulator.seed, 4, seed])
    histories: list[tuple[list[int], list[int]]] = [([], []) for _ in range(num_users)]
    fb = np.zeros((num_users, steps), dtype=np.int8)
    rep_creator = np.zeros((num_users, steps), dtype=bool)
    rep_cluster = np.zeros((num_users, steps), dtype=bool)
    disliked_creators = [set() for _ in range(num_users)]
    disliked_clusters = [set() for _ in range(num_users)]
    creators = simulator.item_creator
    clusters = simulator.item_cluster
    for t in tqdm(range(steps), disable=not progress, desc="closed loop", leave=False):
        pick, codes = simulate_step(model, objective, simulator, state, histories, slate_size, rng)
        fb[:, t] = codes
        for u in np.flatnonzero(codes == Feedback.DISLIKE):
            i = int(pick[u])
            rep_creator[u, t] = creators[i] in disliked_creators[u]
            rep_cluster[u, t] = clusters[i] in disliked_clusters[u]
            disliked_creators[u].add(int(creators[i]))
            disliked_clusters[u].add(int(clusters[i]))
    events = {
        "positive_rate": fb == Feedback.POSITIVE, "neutral_rate": fb == Feedback.NEUTRAL,
        "skip_rate": fb == Feedback.SKIP, "dislike_rate": fb == Feedback.DISLIKE,
        "repeated_dislike_creator_rate": rep_creator, "repeated_dislike_cluster_rate": rep_cluster,
    }
    per_user = {k: v.mean(1) for k, v in events.items()}
    per_step = {k: v.mean(0) for k, v in events.items()}
    rates = {}
    for k, v in per_user.items():
        lo, hi = bootstrap_ci(v, resamples=bootstrap, seed=seed)
        rates[k] = Estimate(float(v.mean()), lo, hi, num_users)
    return ClosedLoopResult(num_users=num_users, steps=steps, rates=rates, per_user=per_user,
                            per_step=per_step)


def paired_relative_change(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0
                           ) -> Estimate:
    """mean(a) / mean(b) - 1 over the same users (paired bootstrap): e.g. the dislike rate of
    input_ntr relative to positive_only's."""
    return ratio_of_means_ci(a, b, resamples=resamples, seed=seed)
