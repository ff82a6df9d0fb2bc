"""Closed-loop simulation: simulated users (the simulator's ground-truth tastes) interact for T
steps with a recommender's slates (any :class:`~negrec.eval.recommender.Recommender`).

The users are existing users: each first has ``warmup_events`` events made the way the training
log's were (the simulator's organic browsing and logging policy, :meth:`Simulator.generate`),
which the model sees as their history; then the model takes over. ``warmup_events=0`` starts
from empty histories (cold start), where every user is shown the same first slate and the
users' paths stay correlated for the first steps, so the intervals over users understate the
run-to-run spread (the cold start was the first version of this loop; see
docs/closed_loop.md for both protocols' figures).

Each step the model shows every user its top ``slate_size`` unseen items for the user's
history so far; the user takes one (the simulator's slate choice), responds (its behaviour
model), and the event joins the history. Reported per model, with bootstrap 95% intervals over
users: the positive, neutral, skip and dislike rates, and the rates of *repeated* dislikes: a
dislike of an item whose creator (or cluster) the user had already disliked in this session
(the offline analogues of the reference paper's live metrics); dislikes of the warm-up count as
already disliked, since the model saw them. Rates are over the T model-driven steps only. Runs
of different models with the same ``seed`` use the same users (and the same warm-up events), so
their differences are paired (:func:`negrec.eval.stats.ratio_of_means_ci` of two runs'
``per_user`` rates).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from negrec.data.feedback import Feedback
from negrec.eval.counterfactual import simulate_step
from negrec.eval.stats import Estimate, bootstrap_ci
from negrec.eval.recommender import Recommender
from negrec.progress import Progress

__all__ = ["ClosedLoopResult", "closed_loop"]

RATES = ("positive_rate", "neutral_rate", "skip_rate", "dislike_rate",
         "repeated_dislike_creator_rate", "repeated_dislike_cluster_rate")


@dataclass
class ClosedLoopResult:
    num_users: int
    steps: int
    warmup_events: int
    rates: dict[str, Estimate]
    per_user: dict[str, np.ndarray] = field(repr=False)  # rate name -> [U]
    per_step: dict[str, np.ndarray] = field(repr=False)  # rate name -> [T] (over users)

    def to_dict(self) -> dict:
        return {"num_users": self.num_users, "steps": self.steps, "warmup_events": self.warmup_events,
                "rates": {k: asdict(v) for k, v in self.rates.items()},
                "per_step": {k: v.tolist() for k, v in self.per_step.items()}}


def closed_loop(recommender: Recommender, simulator, *, num_users: int,
                steps: int, seed: int, slate_size: int = 10, warmup_events: int = 20,
                bootstrap: int = 1000, progress: bool = False) -> ClosedLoopResult:
    """``num_users`` simulated users (population seed ``seed``), each with ``warmup_events``
    logged events, then ``steps`` steps of ``recommender``'s top-``slate_size`` slates. Returns the
    rates of the model-driven steps with bootstrap 95% intervals over users, and per-user
    ([U] float64) and per-step ([T] float64) rates."""
    for name, value, low in (("num_users", num_users, 1), ("steps", steps, 1),
                             ("slate_size", slate_size, 1), ("warmup_events", warmup_events, 0)):
        if not (isinstance(value, (int, np.integer)) and value >= low):
            raise ValueError(f"closed_loop: {name} must be an integer >= {low}; got {value!r}")
    if warmup_events + steps > simulator.config.num_items:
        raise ValueError(f"closed_loop: warmup_events + steps ({warmup_events} + {steps}) cannot "
                         f"exceed the simulator's {simulator.config.num_items} items (no repeats)")
    state = simulator.spawn_users(num_users, seed)
    creators = simulator.item_creator
    clusters = simulator.item_cluster
    histories: list[tuple[list[int], list[int]]] = [([], []) for _ in range(num_users)]
    disliked_creators = [set() for _ in range(num_users)]
    disliked_clusters = [set() for _ in range(num_users)]
    if warmup_events:
        warm, state = simulator.generate(num_users, warmup_events, seed=seed, state=state)
        for u in range(num_users):
            items, feedback = warm.user_events(u)
            histories[u] = (items.tolist(), feedback.tolist())
            bad = items[feedback == Feedback.DISLIKE]
            disliked_creators[u].update(creators[bad].tolist())
            disliked_clusters[u].update(clusters[bad].tolist())
    rng = np.random.default_rng([simulator.seed, 4, seed])
    fb = np.zeros((num_users, steps), dtype=np.int8)
    rep_creator = np.zeros((num_users, steps), dtype=bool)
    rep_cluster = np.zeros((num_users, steps), dtype=bool)
    for t in Progress(range(steps), f"closed loop of {num_users} users, step", show=progress):
        pick, codes = simulate_step(recommender, simulator, state, histories, slate_size, rng)
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
    return ClosedLoopResult(num_users=num_users, steps=steps, warmup_events=warmup_events,
                            rates=rates, per_user=per_user,
                            per_step=per_step)
