"""A ground-truth user simulator: the embedded default dataset and the user model of the
closed-loop and counterfactual evaluations.

World: ``num_items`` items, each made by one of ``num_creators`` creators; each creator works in
one content cluster (of ``num_clusters``), so an item's cluster is its creator's. Items have a
quality and a Zipf-like popularity.

Users (a population sampled by seed) have latent tastes:
  - a long-run affinity per cluster: N(0, ``base_sd``) plus ``loved_boost`` for
    ``loved_clusters`` random clusters and minus ``hated_penalty`` for ``hated_clusters``
    others;
  - a creator affinity ``creator_scale * <user style, creator style> / sqrt(style_dims)``, and
    ``-hated_creator_penalty`` for ``hated_creators`` random creators;
  - the current cluster affinity drifts around the long-run one (Ornstein-Uhlenbeck: pulled
    back by ``drift_pull`` and shaken by ``drift_sd`` per event), so tastes change slowly;
  - satiation: consuming an item of a cluster adds 1 to the user's satiation with it, which
    decays by ``satiation_decay`` per event and lowers the cluster's affinity by
    ``satiation_strength`` per unit, so a binge on a loved cluster ends in skips and
    dislikes, and the user's interest then moves on for a while;
  - aversion: a bad experience makes things worse for a while: a dislike (a skip) lowers the
    affinity to the item's cluster and to its creator by ``dislike_aversion``
    (``skip_aversion``), decaying by ``aversion_decay`` per event. Showing more of what was
    just disliked is what draws repeated dislikes.

Behaviour: shown item i, a user's affinity is ``a = cluster + creator + quality`` and the
response is drawn from softmax([u_pos, 0, u_skip, u_dislike]) over (positive, neutral, skip,
dislike) with utilities u_pos = pos_slope * a + pos_bias, u_skip = -skip_slope * a + skip_bias,
u_dislike = -dislike_slope * a + dislike_bias. High affinity gives positives; very low
affinity gives skips and dislikes (a dislike means "consumed, then disliked").

Sessions: at each step a user either browses organically (share ``organic_share``: a cluster
drawn from softmax(organic_temperature * affinity), then an item of it by popularity) or is
shown an item by a recommender: any given policy, or the default logging policy
(``exposure_policy``): "similar_recent" shows, with probability ``similar_share``, an item of
the cluster of one of the user's last ``recent_window`` items and otherwise a random one (a
production recommender that ignores negative feedback, as in the reference paper's logs), or
"random". Items are not
repeated within a user. Shown a slate (e.g. a recommender's top 10), a user takes the item
with the highest affinity plus Gumbel noise of scale ``slate_choice_noise``.

The parameters are fixed: how the design came about (three diagnostic runs, each before any
model tuning) and what the default world's log looks like are in docs/simulator.md.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.log import EventLog, ItemMeta
from negrec.errors import UserError

__all__ = ["SimConfig", "Simulator", "UserState"]

# Response categories in the order of the behaviour model's softmax.
RESPONSES = np.array([Feedback.POSITIVE, Feedback.NEUTRAL, Feedback.SKIP, Feedback.DISLIKE],
                     dtype=np.int8)


@dataclass(frozen=True)
class SimConfig:
    # world
    num_items: int = 1500  # items in the world
    num_clusters: int = 20  # content clusters (each creator works in one)
    num_creators: int = 300  # creators (each item is made by one)
    quality_sd: float = 0.5  # spread of the items' quality
    popularity_zipf: float = 0.8  # popularity of the r-th item of a cluster ∝ r^-zipf
    # user tastes
    base_sd: float = 0.5  # spread of a user's long-run affinity per cluster
    loved_clusters: int = 3  # clusters each user loves
    loved_boost: float = 2.0  # affinity added to a loved cluster
    hated_clusters: int = 2  # clusters each user hates
    hated_penalty: float = 2.5  # affinity taken from a hated cluster
    style_dims: int = 4  # dimensions of the user / creator style vectors
    creator_scale: float = 0.6  # weight of the user-creator style match
    hated_creators: int = 3  # creators each user hates
    hated_creator_penalty: float = 2.5  # affinity taken from a hated creator
    drift_pull: float = 0.02  # how fast current tastes return to the long-run ones (per event)
    drift_sd: float = 0.05  # random drift of current tastes per event
    satiation_strength: float = 1.0  # affinity lost per unit of satiation with a cluster
    satiation_decay: float = 0.85  # satiation kept per event
    # cluster and creator by dislike_aversion (skip_aversion), decaying by aversion_decay
    # per event
    dislike_aversion: float = 2.5  # affinity to a disliked item's cluster and creator lost right after
    skip_aversion: float = 0.5  # the same after a skip
    aversion_decay: float = 0.95  # aversion kept per event
    pos_slope: float = 2.0  # positive response: utility slope in affinity
    pos_bias: float = -0.5  # positive response: utility offset
    skip_slope: float = 1.0  # skip: utility slope in minus affinity
    skip_bias: float = 0.0  # skip: utility offset
    dislike_slope: float = 2.0  # dislike: utility slope in minus affinity
    dislike_bias: float = -2.5  # dislike: utility offset (lower: rarer dislikes)
    organic_share: float = 0.5  # share of steps where the user browses on their own
    organic_temperature: float = 1.5  # how strongly organic browsing follows affinity
    slate_choice_noise: float = 0.5  # Gumbel noise of a user's choice from a slate
    # negative feedback: with probability similar_share an unseen item, by popularity, of the
    # cluster of one of the user's last `recent_window` items; else a random unseen item) or
    # "random"
    exposure_policy: str = "similar_recent"  # logging policy of the default dataset: similar_recent or random
    similar_share: float = 0.7  # similar_recent: probability of an item from a recent item's cluster
    recent_window: int = 3  # similar_recent: how many of the last items count as recent
    num_users: int = field(default=2500, metadata={"help": "simulated: number of users"})
    events_per_user: int = field(default=80, metadata={"help": "simulated: events per user"})
    # whether the item metadata of the log names each item's creator (the world always has
    # creators; a log without them is like MovieLens: categories only)
    creators_visible: bool = True  # the log names each item's creator (false: categories only, like MovieLens)

    def __post_init__(self) -> None:
        checks = {
            "num_items": (self.num_items > 0, "> 0", self.num_items),
            "num_clusters": (self.num_clusters > 0, "> 0", self.num_clusters),
            "num_creators": (self.num_creators >= self.num_clusters, ">= num_clusters",
                             f"{self.num_creators} with num_clusters = {self.num_clusters}"),
            "loved_clusters + hated_clusters": (
                self.loved_clusters + self.hated_clusters <= self.num_clusters, "<= num_clusters",
                f"{self.loved_clusters} + {self.hated_clusters} with num_clusters = "
                f"{self.num_clusters}"),
            "hated_creators": (0 <= self.hated_creators <= self.num_creators,
                               "in [0, num_creators]",
                               f"{self.hated_creators} with num_creators = {self.num_creators}"),
            "organic_share": (0.0 <= self.organic_share <= 1.0, "in [0, 1]", self.organic_share),
            "similar_share": (0.0 <= self.similar_share <= 1.0, "in [0, 1]", self.similar_share),
            "exposure_policy": (self.exposure_policy in ("similar_recent", "random"),
                                "'similar_recent' or 'random'", repr(self.exposure_policy)),
            "recent_window": (self.recent_window >= 1, ">= 1", self.recent_window),
            "events_per_user": (0 < self.events_per_user <= self.num_items, "in (0, num_items]",
                                f"{self.events_per_user} with num_items = {self.num_items}"),
            "num_users": (self.num_users >= 0, ">= 0", self.num_users),
        }
        for name, (ok, rule, got) in checks.items():
            if not ok:
                raise UserError(f"SimConfig: the simulator refuses this world: {name} must be "
                                f"{rule}; got {got}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UserState:
    """Tastes and state of a set of simulated users (all arrays indexed by user)."""

    long_run: np.ndarray  # [U, C] float64 long-run cluster affinity
    affinity: np.ndarray  # [U, C] float64 current cluster affinity (drifts)
    style: np.ndarray  # [U, S] float64
    hated_creators: np.ndarray  # [U, H] int64
    seen: np.ndarray  # [U, V] bool: items already consumed/shown
    satiation: np.ndarray  # [U, C] float64
    cluster_aversion: np.ndarray  # [U, C] float64
    creator_aversion: np.ndarray  # [U, R] float64

    def __len__(self) -> int:
        return len(self.long_run)


Recommender = Callable[[np.ndarray, "UserState", np.random.Generator], np.ndarray]


class Simulator:
    """The world (items) of one seed, and the user model acting in it."""

    def __init__(self, config: SimConfig = SimConfig(), seed: int = 0):
        self.config, self.seed = config, seed
        rng = np.random.default_rng([seed, 0])
        c = config
        # creators: each in one cluster, every cluster has at least one
        creator_cluster = np.concatenate([np.arange(c.num_clusters),
                                          rng.integers(0, c.num_clusters, c.num_creators - c.num_clusters)])
        rng.shuffle(creator_cluster)
        self.creator_cluster = creator_cluster.astype(np.int64)
        self.creator_style = rng.standard_normal((c.num_creators, c.style_dims))
        # items: a random creator each; cluster = the creator's
        self.item_creator = rng.integers(0, c.num_creators, c.num_items).astype(np.int64)
        self.item_cluster = self.creator_cluster[self.item_creator]
        self.item_quality = rng.normal(0.0, c.quality_sd, c.num_items)
        # popularity: Zipf within each cluster, in a random order
        pop = np.empty(c.num_items)
        for k in range(c.num_clusters):
            idx = np.flatnonzero(self.item_cluster == k)
            ranks = rng.permutation(len(idx)) + 1
            pop[idx] = ranks.astype(np.float64) ** -c.popularity_zipf
        self.item_popularity = pop
        # for organic choice: items grouped by cluster with within-cluster cumulative
        # popularity, offset by the cluster index so one searchsorted serves every cluster
        order = np.lexsort((np.arange(c.num_items), self.item_cluster))
        self._by_cluster = order
        cum = np.zeros(c.num_items)
        for k in range(c.num_clusters):
            sel = self.item_cluster[order] == k
            p = pop[order][sel]
            cum[sel] = k + np.cumsum(p) / p.sum()
        self._cluster_cum = cum
        self._cluster_sizes = np.bincount(self.item_cluster, minlength=c.num_clusters)

    # ---- metadata -----------------------------------------------------------------------
    def item_meta(self) -> ItemMeta:
        c = self.config
        return ItemMeta(raw_ids=np.arange(c.num_items, dtype=np.int64), cluster=self.item_cluster,
                        cluster_names=[f"cluster{k}" for k in range(c.num_clusters)],
                        creator=self.item_creator if c.creators_visible else None,
                        creator_names=([f"creator{r}" for r in range(c.num_creators)]
                                       if c.creators_visible else None))

    # ---- users --------------------------------------------------------------------------
    def spawn_users(self, n: int, seed: int) -> UserState:
        """``n`` new users from the population (deterministic in ``seed``)."""
        c = self.config
        rng = np.random.default_rng([self.seed, 1, seed])
        long_run = rng.normal(0.0, c.base_sd, (n, c.num_clusters))
        for u in range(n):
            picks = rng.choice(c.num_clusters, c.loved_clusters + c.hated_clusters, replace=False)
            long_run[u, picks[: c.loved_clusters]] += c.loved_boost
            long_run[u, picks[c.loved_clusters:]] -= c.hated_penalty
        hated = np.stack([rng.choice(c.num_creators, c.hated_creators, replace=False)
                          for _ in range(n)]) if c.hated_creators else np.zeros((n, 0), np.int64)
        return UserState(long_run=long_run, affinity=long_run.copy(),
                         style=rng.standard_normal((n, c.style_dims)),
                         hated_creators=hated.astype(np.int64),
                         seen=np.zeros((n, c.num_items), dtype=bool),
                         satiation=np.zeros((n, c.num_clusters)),
                         cluster_aversion=np.zeros((n, c.num_clusters)),
                         creator_aversion=np.zeros((n, c.num_creators)))

    # ---- ground truth -------------------------------------------------------------------
    def affinity_parts(self, state: UserState, users: np.ndarray, items: np.ndarray
                       ) -> dict[str, np.ndarray]:
        """The terms of the current affinity of each (user, item) pair (users and items
        broadcast; each term has their shape), by name: ``cluster_taste`` (the user's current
        taste for the item's cluster: ``state.long_run`` with loved and hated clusters, plus
        its drift), ``satiation`` and ``cluster_aversion`` (minus the recent consumption of,
        and the recent skips / dislikes in, that cluster), ``creator_aversion``,
        ``creator_style``, ``hated_creator`` and ``quality``. :meth:`affinity` is their sum,
        in this order. What they show about the dislikes of a log: docs/generalization_screening.md,
        "Why simulated users dislike"."""
        c = self.config
        users, items = np.broadcast_arrays(np.asarray(users), np.asarray(items))
        creators = self.item_creator[items]
        clusters = self.item_cluster[items]
        hated = ((state.hated_creators[users] == creators[..., None]).any(-1) if c.hated_creators
                 else np.zeros(items.shape, dtype=bool))
        return {
            "cluster_taste": state.affinity[users, clusters],
            "satiation": -c.satiation_strength * state.satiation[users, clusters],
            "cluster_aversion": -state.cluster_aversion[users, clusters],
            "creator_aversion": -state.creator_aversion[users, creators],
            "creator_style": c.creator_scale * np.einsum(
                "...d,...d->...", state.style[users], self.creator_style[creators])
            / math.sqrt(c.style_dims),
            "hated_creator": -c.hated_creator_penalty * hated,
            "quality": self.item_quality[items],
        }

    def affinity(self, state: UserState, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Current affinity a of each (user, item) pair (users and items broadcast): the sum
        of :meth:`affinity_parts`, left to right."""
        parts = iter(self.affinity_parts(state, users, items).values())
        total = next(parts).astype(np.float64, copy=True)
        for part in parts:
            total += part
        return total

    def response_probabilities(self, state: UserState, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[..., 4] probabilities of (positive, neutral, skip, dislike)."""
        c = self.config
        a = self.affinity(state, users, items)
        util = np.stack([c.pos_slope * a + c.pos_bias, np.zeros_like(a),
                         -c.skip_slope * a + c.skip_bias, -c.dislike_slope * a + c.dislike_bias], -1)
        util -= util.max(-1, keepdims=True)
        e = np.exp(util)
        return e / e.sum(-1, keepdims=True)

    # ---- behaviour ----------------------------------------------------------------------
    def respond(self, state: UserState, users: np.ndarray, items: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        """Users consume the given items (one each) and respond: returns int8 feedback codes.
        Marks the items seen and lets those users' tastes drift one step."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        probs = self.response_probabilities(state, users, items)
        r = rng.random(len(users))
        choice = (probs.cumsum(-1) < r[:, None]).sum(-1).clip(max=3)
        state.seen[users, items] = True
        self._drift(state, users, rng)
        c = self.config
        _scale_rows(state.satiation, users, c.satiation_decay)
        state.satiation[users, self.item_cluster[items]] += 1.0
        codes = RESPONSES[choice]
        bump = np.where(codes == Feedback.DISLIKE, c.dislike_aversion,
                        np.where(codes == Feedback.SKIP, c.skip_aversion, 0.0))
        _scale_rows(state.cluster_aversion, users, c.aversion_decay)
        _scale_rows(state.creator_aversion, users, c.aversion_decay)
        state.cluster_aversion[users, self.item_cluster[items]] += bump
        state.creator_aversion[users, self.item_creator[items]] += bump
        return codes

    def choose_from_slate(self, state: UserState, users: np.ndarray, slates: np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
        """The item each user takes from their slate [U, k]: highest affinity plus Gumbel
        noise (scale ``slate_choice_noise``)."""
        users = np.asarray(users, dtype=np.int64)
        aff = self.affinity(state, users[:, None], slates)
        noise = rng.gumbel(0.0, self.config.slate_choice_noise, aff.shape)
        return slates[np.arange(len(users)), np.argmax(aff + noise, axis=1)]

    def _drift(self, state: UserState, users: np.ndarray, rng: np.random.Generator) -> None:
        c = self.config
        noise = rng.standard_normal((len(users), state.affinity.shape[1]))
        if _all_rows(state.affinity, users):  # in place, without gathering copies
            a = state.affinity
            a += c.drift_pull * (state.long_run - a) + c.drift_sd * noise
            return
        a = state.affinity[users]
        a += c.drift_pull * (state.long_run[users] - a) + c.drift_sd * noise
        state.affinity[users] = a

    def organic_choice(self, state: UserState, users: np.ndarray, rng: np.random.Generator,
                       tries: int = 8) -> np.ndarray:
        """Items the users pick themselves: a cluster by softmax(temperature * affinity), then
        an unseen item of it by popularity (falling back to any unseen item)."""
        c = self.config
        logits = c.organic_temperature * (state.affinity[users] - c.satiation_strength * state.satiation[users]
                                          - state.cluster_aversion[users])
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        clusters = (p.cumsum(-1) < rng.random(len(users))[:, None]).sum(-1).clip(max=c.num_clusters - 1)
        items = np.full(len(users), -1, dtype=np.int64)
        todo = np.arange(len(users))
        for _ in range(tries):
            if len(todo) == 0:
                break
            pos = np.searchsorted(self._cluster_cum, clusters[todo] + rng.random(len(todo)))
            pos = np.minimum(pos, c.num_items - 1)
            cand = self._by_cluster[pos]
            ok = ~state.seen[users[todo], cand]
            items[todo[ok]] = cand[ok]
            todo = todo[~ok]
        if len(todo):
            items[todo] = self.random_unseen(state, users[todo], rng)
        return items

    def similar_recent(self, state: UserState, users: np.ndarray, recent: np.ndarray,
                       rng: np.random.Generator, tries: int = 8) -> np.ndarray:
        """The default logging policy: with probability ``similar_share`` an unseen item (by
        popularity) of the cluster of a random one of the user's ``recent`` items [U, W]
        (-1 = none), else a random unseen item."""
        c = self.config
        n = len(users)
        items = self.random_unseen(state, users, rng)
        anchor = recent[np.arange(n), rng.integers(0, recent.shape[1], n)]
        similar = (rng.random(n) < c.similar_share) & (anchor >= 0)
        todo = np.flatnonzero(similar)
        clusters = self.item_cluster[np.maximum(anchor, 0)]
        for _ in range(tries):
            if len(todo) == 0:
                break
            pos = np.minimum(np.searchsorted(self._cluster_cum, clusters[todo] + rng.random(len(todo))),
                             c.num_items - 1)
            cand = self._by_cluster[pos]
            ok = ~state.seen[users[todo], cand]
            items[todo[ok]] = cand[ok]
            todo = todo[~ok]
        return items

    def random_unseen(self, state: UserState, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random item each user has not seen (the default exposure policy)."""
        c = self.config
        items = rng.integers(0, c.num_items, len(users))
        clash = state.seen[users, items]
        while clash.any():
            idx = np.flatnonzero(clash)
            items[idx] = rng.integers(0, c.num_items, len(idx))
            clash[idx] = state.seen[users[idx], items[idx]]
        return items

    # ---- datasets -----------------------------------------------------------------------
    def generate(self, num_users: int | None = None, events_per_user: int | None = None,
                 seed: int = 0, recommender: Recommender | None = None,
                 state: UserState | None = None) -> tuple[EventLog, UserState]:
        """A log of ``num_users`` new users x ``events_per_user`` events (organic browsing
        mixed with exposures from ``recommender``, random by default) and the users' state
        (ground truth). ``recommender(users, state, rng) -> items`` must return unseen items."""
        c = self.config
        n = c.num_users if num_users is None else num_users
        steps = c.events_per_user if events_per_user is None else events_per_user
        if steps > c.num_items:
            raise UserError(f"events_per_user ({steps}) cannot exceed num_items ({c.num_items})")
        rng = np.random.default_rng([self.seed, 2, seed])
        state = self.spawn_users(n, seed) if state is None else state
        users = np.arange(n)
        recent = np.full((n, c.recent_window), -1, dtype=np.int64)  # ring of the last items
        items = np.empty((n, steps), dtype=np.int64)
        fb = np.empty((n, steps), dtype=np.int8)
        organic_flags = np.empty((n, steps), dtype=bool)
        for t in range(steps):
            organic = rng.random(n) < c.organic_share
            chosen = np.empty(n, dtype=np.int64)
            if organic.any():
                chosen[organic] = self.organic_choice(state, users[organic], rng)
            if (~organic).any():
                exposed = users[~organic]
                if recommender is not None:
                    chosen[~organic] = recommender(exposed, state, rng)
                elif c.exposure_policy == "similar_recent" and t > 0:
                    chosen[~organic] = self.similar_recent(state, exposed, recent[exposed], rng)
                else:
                    chosen[~organic] = self.random_unseen(state, exposed, rng)
            fb[:, t] = self.respond(state, users, chosen, rng)
            items[:, t] = chosen
            organic_flags[:, t] = organic
            recent[:, t % c.recent_window] = chosen
        # dwell as strength: long for positives, short for skips (seconds, with noise)
        dwell_mean = np.array([0, 60.0, 25.0, 2.0, 20.0])[fb]
        dwell = dwell_mean * rng.lognormal(0.0, 0.3, fb.shape)
        ts = np.broadcast_to(np.arange(steps, dtype=np.int64), (n, steps))
        log = EventLog.from_events(np.repeat(users, steps), items.ravel(), ts.ravel(), fb.ravel(),
                                   strength=dwell.ravel(), item_meta=self.item_meta(),
                                   source=f"simulator(seed={self.seed}, users_seed={seed})")
        self.last_organic = organic_flags
        return log, state


def _all_rows(array: np.ndarray, users: np.ndarray) -> bool:
    """``users`` is 0..n-1 in order (every user steps at once, as in generate and the closed
    loop): the rows can then be updated in place instead of through a fancy-index copy."""
    n = array.shape[0]
    return len(users) == n and (n == 0 or (users[0] == 0 and users[-1] == n - 1
                                          and bool(np.all(np.diff(users) == 1))))


def _scale_rows(array: np.ndarray, users: np.ndarray, factor: float) -> None:
    if _all_rows(array, users):
        array *= factor
    else:
        array[users] *= factor
