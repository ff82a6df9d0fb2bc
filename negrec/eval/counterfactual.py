"""Counterfactual responsiveness: how much does a recommender back off from similar items at
the very next step after a negative action?

A history is branched at step k into the same item with different actions (positive, dislike,
skip, or any feedback code); for each branch the recommender's top-K at step k+1 is asked for
(a :class:`~negrec.eval.recommender.Recommender`: what it excludes is its own business; negrec's
model adapter excludes history items, as in evaluation) and its similarity to the branched item is
measured: S = share of the top-K in the branched item's content cluster (and, where the data
has creators, by its creator). The responsiveness of action a is

    R_a = mean_h S_a(h) / mean_h S_positive(h) - 1

(a ratio of means: per-history ratios are undefined when S_positive is 0), as a fraction
(-0.608 is the reference paper's -60.8%), with a paired bootstrap 95% interval over histories
(:func:`negrec.eval.stats.ratio_of_means_ci`).
Repeated negative feedback: R after 1, 2, 3 consecutive dislikes of items of the same cluster
(each compared with the same items liked).

Histories come from the simulator (users consume items recommended by the recommender under
test and respond as the simulator's user model says) or from a real log (each user's training
history; the branched item is the recommender's own top-1 recommendation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from negrec.data.feedback import Feedback, parse_feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.eval.recommender import ModelRecommender, Recommender, recommend_batched
from negrec.eval.stats import Estimate, ratio_of_means_ci
from negrec.progress import Progress

__all__ = ["ResponsivenessResult", "log_histories", "responsiveness", "simulate_step",
           "simulated_histories", "cooccurrence_clusters", "FOLLOWER_DEPTH"]

#: For a recommender known only by its top-K lists: how deep a list the same-cluster followers
#: of the repeated-dislike branches are looked for in (negrec models rank the cluster's items
#: themselves; see :func:`_same_cluster_followers`).
FOLLOWER_DEPTH = 100

History = tuple[list[int], list[int]]


@dataclass
class ResponsivenessResult:
    """Per similarity kind ("cluster", "creator") and action: the per-history similarity
    scores ([H] float64 each) and the responsiveness estimates; per kind and number n of
    consecutive dislikes, the estimates and the (dislike, positive) branches' scores (over the
    histories that have n items of the branched item's cluster)."""

    k: int
    num_histories: int
    actions: list[str]
    similarity: dict[str, dict[str, np.ndarray]] = field(repr=False)
    responsiveness: dict[str, dict[str, Estimate]]
    repeated: dict[str, dict[int, Estimate]]
    repeated_similarity: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = field(
        default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            "k": self.k, "num_histories": self.num_histories, "actions": self.actions,
            "mean_similarity": {kind: {a: float(np.mean(v)) for a, v in d.items()}
                                for kind, d in self.similarity.items()},
            "responsiveness": {kind: {a: asdict(e) for a, e in d.items()}
                               for kind, d in self.responsiveness.items()},
            "repeated_dislikes": {kind: {str(n): asdict(e) for n, e in d.items()}
                                  for kind, d in self.repeated.items()},
        }


def _share(top: np.ndarray, group_of_item: np.ndarray, group: np.ndarray) -> np.ndarray:
    """[H] share of each row of ``top`` [H, k] whose group equals ``group`` [H] (>= 0)."""
    g = group_of_item[top]
    return ((g == group[:, None]) & (group[:, None] >= 0)).mean(1)


def responsiveness(recommender: Recommender, histories: Sequence[History], branched: np.ndarray,
                   item_meta: ItemMeta, *,
                   actions: Sequence[str | int | Feedback] = ("dislike", "skip"), k: int = 10,
                   repeated: Sequence[int] = (1, 2, 3), bootstrap: int = 1000, seed: int = 0,
                   progress: bool = False) -> ResponsivenessResult:
    """Branches each history with ``branched[h]`` under the positive action and each of
    ``actions`` and asks ``recommender`` for each branch's top ``k``; see the module docstring.
    Histories are (dense item ids, feedback codes) over ``item_meta``'s catalogue."""
    if len(histories) != len(branched):
        raise ValueError(f"responsiveness: {len(histories)} histories but {len(branched)} "
                         "branched items")
    if len(histories) == 0:
        raise ValueError("responsiveness: no histories")
    codes = [parse_feedback(a) for a in actions]
    if Feedback.PAD in codes or Feedback.POSITIVE in codes:
        raise ValueError("responsiveness: actions are compared with the positive branch; give "
                         "other feedback types (dislike, skip, neutral)")
    branched = np.asarray(branched, dtype=np.int64)
    num_items = item_meta.num_items
    kinds = {"cluster": item_meta.cluster}
    if item_meta.creator is not None:
        kinds["creator"] = item_meta.creator
    all_codes = [Feedback.POSITIVE] + codes
    sims: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in kinds}
    bar = Progress(desc="counterfactual branches", show=progress, total=len(all_codes) + len(repeated))
    for code in all_codes:
        branch = [(list(h[0]) + [int(x)], list(h[1]) + [int(code)]) for h, x in zip(histories, branched)]
        top = recommend_batched(recommender, branch, k, num_items)
        for kind, groups in kinds.items():
            sims[kind][code.label] = _share(top, groups, groups[branched])
        bar.update(1)
    resp = {kind: {c.label: ratio_of_means_ci(sims[kind][c.label], sims[kind]["positive"],
                                               resamples=bootstrap, seed=seed)
                   for c in codes} for kind in kinds}

    # repeated dislikes on one cluster: the branched item and the next best items of its
    # cluster (for the history as it was), disliked in a row vs liked in a row
    rep: dict[str, dict[int, Estimate]] = {kind: {} for kind in kinds}
    rep_sims: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {kind: {} for kind in kinds}
    if repeated:
        n_max = max(repeated)
        extra = _same_cluster_followers(recommender, histories, branched, item_meta.cluster,
                                        n_max - 1)
        for n in repeated:
            seq = [[int(branched[h])] + extra[h][: n - 1] for h in range(len(histories))]
            ok = np.array([len(s) == n for s in seq])
            res = {}
            for code in (Feedback.POSITIVE, Feedback.DISLIKE):
                branch = [(list(h[0]) + s, list(h[1]) + [int(code)] * len(s))
                          for h, s, good in zip(histories, seq, ok) if good]
                res[code] = recommend_batched(recommender, branch, k, num_items)
            for kind, groups in kinds.items():
                g = groups[branched[ok]]
                pair = (_share(res[Feedback.DISLIKE], groups, g),
                        _share(res[Feedback.POSITIVE], groups, g))
                rep_sims[kind][n] = pair
                rep[kind][n] = ratio_of_means_ci(*pair, resamples=bootstrap, seed=seed)
            bar.update(1)
    bar.close()
    return ResponsivenessResult(k=k, num_histories=len(histories),
                                actions=[c.label for c in codes], similarity=sims,
                                responsiveness=resp, repeated=rep, repeated_similarity=rep_sims)


def _same_cluster_followers(recommender: Recommender, histories, branched, cluster, n
                            ) -> list[list[int]]:
    """For each history, the ``n`` best-ranked items (after the branched one) of the branched
    item's cluster, excluding the history (fewer when the cluster has fewer such items; such a
    history is left out of the longer repeated-dislike branches, and the estimates count the
    histories behind them). A negrec model scores the histories of each cluster against that
    cluster's items only, so that memory and work grow with the cluster, not the catalogue;
    any other recommender gives its top :data:`FOLLOWER_DEPTH` and the cluster's items are
    taken from it in its order."""
    out: list[list[int]] = [[] for _ in histories]
    if n <= 0:
        return out
    cluster = np.asarray(cluster)
    branched = np.asarray(branched)
    if not isinstance(recommender, ModelRecommender):
        longest = max(len(h[0]) for h in histories)
        depth = max(1, min(FOLLOWER_DEPTH, len(cluster) - longest))
        top = recommend_batched(recommender, histories, depth, len(cluster))
        for h, ids in enumerate(top):
            seen = set(histories[h][0])
            same = (cluster[ids] == cluster[branched[h]]) & (cluster[branched[h]] >= 0)
            out[h] = [int(i) for i in ids[same] if i != branched[h] and int(i) not in seen][:n]
        return out
    by_cluster = np.argsort(cluster, kind="stable")
    branched = np.asarray(branched)
    branched_cluster = cluster[branched]
    for c in np.unique(branched_cluster[branched_cluster >= 0]):
        rows = np.flatnonzero(branched_cluster == c)
        lo, hi = np.searchsorted(cluster[by_cluster], [c, c + 1])
        items = by_cluster[lo:hi]
        # one more than n: the branched item may be among the best
        top, scores = recommender.top([histories[h] for h in rows], min(n + 1, len(items)),
                                      candidates=items)
        for h, ids, s in zip(rows, top, scores):
            out[h] = [int(i) for i, v in zip(ids, s) if i != branched[h] and v > -np.inf][:n]
    return out


# ---- where histories come from ------------------------------------------------------------

def log_histories(recommender: Recommender, log: EventLog,
                  users: np.ndarray | None = None, min_events: int = 1
                  ) -> tuple[list[History], np.ndarray, np.ndarray]:
    """Real-log histories: each user's events in ``log`` (e.g. the training split), and as the
    branched item the recommender's own top-1 recommendation for that history. Returns
    (histories, branched items, users)."""
    users = np.arange(log.num_users) if users is None else np.asarray(users)
    users = users[log.lengths()[users] >= min_events]
    histories = [(items.tolist(), feedback.astype(int).tolist())
                 for items, feedback in (log.user_events(int(u)) for u in users)]
    top = recommend_batched(recommender, histories, 1, log.num_items)
    return histories, top[:, 0], users


def simulate_step(recommender: Recommender, simulator, state, histories: list[History],
                  slate_size: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One step for every simulated user (users 0..len(histories)-1 of ``state``): the
    recommender shows its top ``slate_size`` items, the user takes one (the simulator's slate choice)
    and responds (its behaviour model); the event is appended to the user's history. Returns
    the items taken and the feedback codes, [U] each."""
    users = np.arange(len(histories))
    top = recommend_batched(recommender, histories, slate_size, simulator.config.num_items)
    pick = simulator.choose_from_slate(state, users, top, rng)
    codes = simulator.respond(state, users, pick, rng)
    for u, (i, f) in enumerate(zip(pick.tolist(), codes.tolist())):
        histories[u][0].append(int(i))
        histories[u][1].append(int(f))
    return pick, codes


def simulated_histories(recommender: Recommender, simulator, *,
                        num_users: int, steps: int, seed: int, slate_size: int = 10,
                        progress: bool = False):
    """Simulated users consume ``steps`` items recommended by ``recommender``: each step it
    shows its top ``slate_size`` items, the user takes one as the simulator's slate
    choice says, and responds as its user model says. Returns (histories, branched items, user
    state): the branched item is the recommender's top-1 after the last step."""
    state = simulator.spawn_users(num_users, seed)
    rng = np.random.default_rng([simulator.seed, 3, seed])
    histories: list[History] = [([], []) for _ in range(num_users)]
    for _ in Progress(range(steps), f"simulating {num_users} histories, step", show=progress):
        simulate_step(recommender, simulator, state, histories, slate_size, rng)
    top = recommend_batched(recommender, histories, 1, simulator.config.num_items)
    return histories, top[:, 0], state


def cooccurrence_clusters(log: EventLog, num_clusters: int, *, window: int = 5, dim: int = 32,
                          seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Item clusters for data without metadata: items that appear close together in users'
    histories (within ``window`` events) end up together. Positive PMI of the windowed
    co-occurrence counts (diagonal = each row's maximum) -> truncated SVD item vectors
    (normalised) -> k-means (k-means++ seeding, best of 8 restarts). Deterministic given
    ``seed``; the co-occurrence matrix is dense, so at most 40,000 items. Items without any
    event get -1. Returns [V] int32."""
    V = log.num_items
    if V > 40_000:  # the co-occurrence matrix is dense [V, V] float64
        raise ValueError(f"cooccurrence_clusters: {V} items is too many for the dense [V, V] "
                         "co-occurrence matrix (limit 40,000); give the items clusters in the "
                         "metadata instead")
    rows, cols = [], []
    for u in range(log.num_users):
        items = log.user_events(u)[0]
        for d in range(1, window + 1):
            rows.append(items[:-d])
            cols.append(items[d:])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    counts = torch.zeros(V, V, dtype=torch.float64)
    counts.index_put_((torch.from_numpy(np.concatenate([r, c])), torch.from_numpy(np.concatenate([c, r]))),
                      torch.ones(2 * len(r), dtype=torch.float64), accumulate=True)
    total = counts.sum()
    seen = counts.sum(1) > 0
    out = np.full(V, -1, dtype=np.int32)
    if total == 0 or int(seen.sum()) < num_clusters:
        raise ValueError(f"cooccurrence_clusters: need at least {num_clusters} items that co-occur")
    p_i = counts.sum(1) / total
    with np.errstate(divide="ignore"):
        pmi = torch.log(counts / total) - torch.log(p_i[:, None]) - torch.log(p_i[None, :])
    ppmi = torch.nan_to_num(pmi.clamp(min=0), nan=0.0, posinf=0.0, neginf=0.0)[seen][:, seen]
    # an item "co-occurs with itself": the diagonal gets each row's largest PPMI. Without it
    # two items seen only with each other have orthogonal rows ([0, a], [a, 0]) and the SVD
    # mixes in negative-eigenvalue (bipartite) directions; with it they get equal vectors.
    ppmi += torch.diag(ppmi.max(1).values)
    q = min(dim, ppmi.shape[0] - 1) if ppmi.shape[0] > 1 else 1
    # svd_lowrank draws a random projection from torch's global generator: seed it locally so
    # the clusters depend on ``seed`` only (and the caller's RNG stream is left untouched)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        U, S, _ = torch.svd_lowrank(ppmi, q=q, niter=4, M=None)
    x = (U * S.sqrt()).numpy()
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    labels = _kmeans(x, num_clusters, seed=seed, iterations=iterations)
    out[seen.numpy()] = labels
    return out


def _kmeans(x: np.ndarray, k: int, *, seed: int, iterations: int, restarts: int = 8) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; the best of ``restarts`` runs (lowest inertia),
    since one run can merge two true clusters and split another (a local minimum)."""
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centers = [x[rng.integers(len(x))]]
        for _ in range(1, k):  # k-means++
            d = np.min(((x[:, None, :] - np.asarray(centers)[None]) ** 2).sum(-1), axis=1)
            centers.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
        c = np.asarray(centers)
        for _ in range(iterations):
            labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
            new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        dist = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        labels = dist.argmin(1)
        inertia = dist[np.arange(len(x)), labels].sum()
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best.astype(np.int32)
