"""Popularity within the clusters a user likes: a counting baseline that knows the user's taste.

:class:`~negrec.models.popularity.MostPopular` ignores the user. This baseline adds the one
thing a content catalogue makes cheap to know, the clusters (categories) of the items the user
liked, and nothing learnt. It scores item i for a history with ``n_u(c)`` positive events in
cluster c (of ``n_u`` in all) as

    log(1 + p_i) + log(s_u(c_i) / q(c_i)),   s_u(c) = (n_u(c) + C q(c)) / (n_u + C)

with ``p_i`` the item's positive training events, ``q(c)`` the share of all positive training
events (counted as ``1 + p_i`` per item) in cluster c, and C the number of clusters: the item's
popularity times how much more often than the catalogue as a whole the user likes its cluster,
the user's shares smoothed towards ``q`` with C pseudo-events (naive Bayes:
P(i | u) ~ P(i) P(c_i | u) / P(c_i)). Items without a cluster share a cluster of their own.
Only positive events of the history count; what a learnt model adds beyond this, it has learnt
from the order of events, the items themselves, creators or negative feedback.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negrec.data.feedback import Feedback
from negrec.data.log import EventLog
from negrec.errors import UserError
from negrec.models.base import SequentialRecommender
from negrec.models.config import ModelConfig
from negrec.models.inputs import ModelInputs

__all__ = ["ClusterPopularity", "history_cluster_shares"]


def history_cluster_shares(clusters: Tensor, counted: Tensor, prior: Tensor) -> Tensor:
    """[B, L, C] the smoothed share of each cluster among the counted events 0..t of each
    history: ``(n_t(c) + C prior(c)) / (n_t + C)``, from ``clusters`` [B, L, C] (each event's
    cluster one-hot, float), ``counted`` [B, L] bool (the events that count) and ``prior`` [C]
    (C pseudo-events spread by it; an empty history gives the prior)."""
    counted = counted.to(clusters.dtype).unsqueeze(-1)
    C = clusters.shape[-1]
    return ((clusters * counted).cumsum(1) + C * prior) / (counted.cumsum(1) + C)


class ClusterPopularity(SequentialRecommender):
    """The state at a history position is ``[1, log(s_u(c) / q(c)) for each cluster c]``
    ([..., 1 + C] float32) and the item table ``[log(1 + p_i), one-hot(c_i)]`` ([V, 1 + C]), so
    ``<state, item>`` is the score above. It reads feedback codes: score it with
    :attr:`inputs` (every event, codes on)."""

    #: what the baseline must see of a history (evaluation, counterfactuals)
    inputs = ModelInputs(codes=True)

    def __init__(self, train_log: EventLog, max_len: int = 50):
        super().__init__()
        meta = train_log.item_meta
        if meta is None or not (meta.cluster >= 0).any():
            raise UserError("ClusterPopularity needs item clusters; the log's items have none")
        self.config = ModelConfig(max_len=max_len)
        self.num_items = train_log.num_items
        known = int(meta.cluster.max()) + 1
        cluster = np.where(meta.cluster >= 0, meta.cluster, known).astype(np.int64)
        num_clusters = known + int((meta.cluster < 0).any())
        counts = train_log.item_counts([Feedback.POSITIVE]).astype(np.float64) + 1.0
        prior = np.bincount(cluster, weights=counts, minlength=num_clusters)
        prior /= prior.sum()
        # the padding item (id V) belongs to no cluster: its column is dropped after one_hot
        self.register_buffer("item_cluster", torch.from_numpy(np.append(cluster, num_clusters)))
        self.register_buffer("prior", torch.from_numpy(prior).float())
        table = np.concatenate([np.log(counts)[:, None],
                                np.eye(num_clusters)[cluster]], axis=1).astype(np.float32)
        self.register_buffer("table", torch.from_numpy(table))
        self.anchor = nn.Parameter(torch.ones(1), requires_grad=False)  # finds the device

    @property
    def num_clusters(self) -> int:
        return len(self.prior)

    def encode(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        """[B, L] histories -> [B, L, 1 + C] states (position t counts events 0..t)."""
        liked = mask & (feedback.long() == int(Feedback.POSITIVE))
        C = self.num_clusters
        per_event = F.one_hot(self.item_cluster[items], C + 1)[..., :C].float()
        lift = torch.log(history_cluster_shares(per_event, liked, self.prior) / self.prior)
        return torch.cat([torch.ones_like(lift[..., :1]), lift], -1)

    def item_table(self) -> Tensor:
        return self.table
