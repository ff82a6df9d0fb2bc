"""Baselines every report can include, each a :class:`~negrec.eval.recommender.Recommender`.

- :func:`most_popular`: the same ranking for everyone (:class:`negrec.models.MostPopular`
  through the model adapter: items by positive training events), history items excluded;
- :class:`ItemKNN`: item-to-item co-occurrence over the training log (item-kNN): the items most
  often liked by the users who liked the history's recent liked items;
- :class:`FilterDisliked`: the reference paper's heuristic on top of *any* recommender: for
  ``steps`` events after a dislike, the disliked item and every item of its cluster are dropped
  from the candidates;
- :class:`FeedbackBlind`: any recommender with every feedback code replaced by ``positive``
  (a history seen as plain interactions): its own ablation, whose responsiveness is 0 by
  construction (the dislike and positive branches are the same history).

:func:`baselines` builds the set the reports show (:data:`BASELINES` names them).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from negrec.data.feedback import Feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.errors import UserError
from negrec.eval.recommender import (ModelRecommender, Recommender, check_recommendations,
                                     from_model, recommender_name)
from negrec.models.inputs import ModelInputs
from negrec.models.popularity import MostPopular

__all__ = ["BASELINES", "FeedbackBlind", "FilterDisliked", "ItemKNN", "baselines", "most_popular"]

#: Dense item-kNN similarity is [V, V] float32: refused above this many items.
MAX_KNN_ITEMS = 20_000


def most_popular(train_log: EventLog) -> ModelRecommender:
    """The most-popular ranking of ``train_log`` (history items excluded)."""
    return from_model(MostPopular(train_log), ModelInputs(), name="most_popular")


class ItemKNN:
    """Item-to-item co-occurrence over a training log.

    ``similarity[i, j]`` = users who liked both i and j / sqrt(users who liked i * users who
    liked j) (cosine of the items' user columns; 0 on the diagonal), from the log's positive
    events. A history's score of item j is the sum of ``similarity[s, j]`` over its ``recent``
    last liked items s, plus a tie-break below any co-occurrence (popularity rank * 1e-9): a
    history without likes gets the most-popular ranking. History items are excluded. It sees
    feedback only through which events count as seeds, so a dislike of an item removes it from
    the seeds (the item is forgotten, not avoided)."""

    def __init__(self, train_log: EventLog, *, recent: int = 10, name: str = "item_knn"):
        V = train_log.num_items
        if V > MAX_KNN_ITEMS:
            raise UserError(f"ItemKNN: {V} items is too many for its dense [V, V] similarity "
                            f"(limit {MAX_KNN_ITEMS:,})")
        self.name, self.recent, self.num_items = name, recent, V
        liked = train_log.feedback == Feedback.POSITIVE
        users = np.repeat(np.arange(train_log.num_users), train_log.lengths())[liked]
        items = train_log.items[liked]
        co = torch.zeros(V, V, dtype=torch.float64)  # users who liked both
        for u0 in range(0, train_log.num_users, 1024):  # [1024, V] 0/1 blocks of users
            sel = (users >= u0) & (users < u0 + 1024)
            x = torch.zeros(min(1024, train_log.num_users - u0), V, dtype=torch.float64)
            x[torch.from_numpy(users[sel] - u0), torch.from_numpy(items[sel])] = 1.0
            co += x.T @ x
        n = co.diagonal().clone()
        co.fill_diagonal_(0)
        norm = torch.sqrt(n[:, None] * n[None, :]).clamp(min=1.0)
        self.similarity = (co / norm).float()
        # -rank / V * 1e-9: distinct, and below any co-occurrence (>= 1 / num_users) in
        # float32, so it only orders items whose co-occurrence scores tie (e.g. 0)
        self.tie_break = MostPopular(train_log).scores[:, 0] * 1e-9

    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        n = len(items)
        seeds = torch.zeros(n, self.num_items)
        for b, (it, fb) in enumerate(zip(items, feedback)):
            liked = np.asarray(it)[np.asarray(fb) == Feedback.POSITIVE][-self.recent:]
            seeds[b, torch.from_numpy(liked.astype(np.int64))] = 1.0
        scores = seeds @ self.similarity + self.tie_break
        for b, it in enumerate(items):
            scores[b, torch.from_numpy(np.asarray(it, dtype=np.int64))] = -torch.inf
        return torch.topk(scores, k, dim=1).indices.numpy()


class FilterDisliked:
    """``base`` with the reference paper's filter: an item disliked within the history's last
    ``steps`` events, and every item of its cluster (``cluster`` [V], -1: none), are dropped
    from the candidates. ``base`` is asked for ``k`` plus as many items as the largest dropped
    set (at most the catalogue minus the longest history, which it may exclude), so ``k``
    allowed items are among its answer whenever the catalogue holds them; when they are not,
    dropped items fill the end of the slate in ``base``'s order (demoted, not removed)."""

    def __init__(self, base: Recommender, cluster: np.ndarray, *, steps: int = 10,
                 name: str | None = None):
        if steps < 1:
            raise UserError(f"FilterDisliked: steps must be >= 1; got {steps}")
        self.base, self.steps = base, steps
        self.cluster = np.asarray(cluster, dtype=np.int64)
        self.name = name or f"{recommender_name(base)}+filter_disliked"
        order = np.argsort(self.cluster, kind="stable")
        self._by_cluster = (order, self.cluster[order])

    def _dropped(self, items: np.ndarray, feedback: np.ndarray) -> np.ndarray:
        recent = slice(max(0, len(items) - self.steps), len(items))
        bad = np.unique(np.asarray(items)[recent][np.asarray(feedback)[recent] == Feedback.DISLIKE])
        order, sorted_clusters = self._by_cluster
        parts = [bad]
        for c in np.unique(self.cluster[bad]):
            if c >= 0:
                lo, hi = np.searchsorted(sorted_clusters, [c, c + 1])
                parts.append(order[lo:hi])
        return np.unique(np.concatenate(parts))

    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        dropped = [self._dropped(i, f) for i, f in zip(items, feedback)]
        # the base may exclude the history, so it is never asked for more than the catalogue
        # minus the longest history (nor for fewer than k)
        room = len(self.cluster) - max((len(i) for i in items), default=0)
        depth = max(k, min(room, k + max((len(d) for d in dropped), default=0)))
        who = f"recommender {recommender_name(self.base)!r}"
        got = check_recommendations(self.base.recommend(items, feedback, depth), len(items),
                                    depth, len(self.cluster), who)
        out = np.empty((len(items), k), dtype=np.int64)
        for b, (row, drop) in enumerate(zip(got, dropped)):
            banned = np.isin(row, drop)
            out[b] = np.concatenate([row[~banned], row[banned]])[:k]
        return out


class FeedbackBlind:
    """``base`` seeing every event as ``positive``: the ablation of a feedback-aware model."""

    def __init__(self, base: Recommender, *, name: str | None = None):
        self.base = base
        self.name = name or f"{recommender_name(base)}+feedback_blind"

    def recommend(self, items: Sequence[np.ndarray], feedback: Sequence[np.ndarray],
                  k: int) -> np.ndarray:
        blind = [np.full(len(f), int(Feedback.POSITIVE), dtype=np.int8) for f in feedback]
        return self.base.recommend(items, blind, k)


#: The baselines of a report, in order: name -> builder from the training log and catalogue.
BASELINES = {
    "most_popular": lambda log, meta: most_popular(log),
    "item_knn": lambda log, meta: ItemKNN(log),
    "item_knn+filter_disliked": lambda log, meta: FilterDisliked(ItemKNN(log), meta.cluster),
}


def baselines(train_log: EventLog, item_meta: ItemMeta,
              names: Sequence[str] = tuple(BASELINES)) -> dict[str, Recommender]:
    """The baselines ``names`` (keys of :data:`BASELINES`) built from ``train_log``."""
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise UserError(f"baselines: unknown {', '.join(unknown)}; expected some of "
                        f"{', '.join(BASELINES)}")
    return {n: BASELINES[n](train_log, item_meta) for n in names}
