"""A GRU over the events (the reference paper's retrieval model is an RNN)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negrec.data.feedback import Feedback
from negrec.errors import UserError
from negrec.models.base import SequentialRecommender
from negrec.models.cluster_popularity import history_cluster_shares
from negrec.models.config import ModelConfig
from negrec.models.embedding import EventEmbedding
from negrec.models.registry import register_model

__all__ = ["GRURec", "RECENT_COUNT_DECAYS"]

#: ``model.count_prior_recency``: the per-event decays of the recent counts. 0.8 forgets an
#: event in about 5 events, 0.95 in about 20: a binge and a run of skips fade on these scales
#: in the simulated worlds (docs/generalization_screening.md, "Why simulated users dislike"), and a
#: learnt scale per count lets the data weigh each.
RECENT_COUNT_DECAYS = (0.8, 0.95)


@register_model("gru")
class GRURec(SequentialRecommender):
    """GRU over the events (the reference paper's retrieval model is an RNN). Histories are
    packed, so padding never enters the recurrence, whatever the padding side."""

    has_count_prior = True

    def __init__(self, config: ModelConfig, num_items: int, item_cluster=None, item_creator=None):
        super().__init__()
        self.config, self.num_items = config, num_items
        self.embed = EventEmbedding(config, num_items, item_cluster, item_creator)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.dim, config.dim, num_layers=config.num_layers, batch_first=True,
                          dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.proj = nn.Linear(config.dim, config.dim)
        self.ln = nn.LayerNorm(config.dim)
        self.output = None if config.tied else nn.Embedding(num_items, config.dim)
        if self.output is not None:
            nn.init.normal_(self.output.weight, std=1.0 / math.sqrt(config.dim))
        # the long-run taste: a map of the running mean of the event embeddings, starting at
        # zero so that an untrained model is the plain GRU (and blind to feedback). The GRU, as
        # PyTorch initialises it, keeps about half its state per event, so a taste spread over
        # 50 events must otherwise be learnt against its forgetting
        self.taste = nn.Linear(config.dim, config.dim) if config.history_mean else None
        if self.taste is not None:
            nn.init.zeros_(self.taste.weight)
            nn.init.zeros_(self.taste.bias)
        # the count prior (``model.count_prior``): a score per item that every user shares
        # (popularity, mostly) and, per cluster, the log share of the history's positive events
        # and of its skipped / disliked events, each times a learnt scale (sign free). Both
        # start at zero, so an untrained model scores as without them. The per-item score is
        # stored divided by dim and the scales by sqrt(dim): Adam moves a stored value by
        # about lr per step, and an item's score <state, row> moves by up to about dim * lr
        # per step through its row (the state's entries are about 1 after the layer norm)
        # With ``count_prior_recency`` it also gets, per cluster, the decayed counts of the
        # history's recent events and of its recent skips / dislikes, one scale each (also
        # starting at zero); without ``count_prior_item_score`` there is no per-item score.
        self.item_score = self.count_scale = None
        if config.count_prior:
            if self.embed.cluster is None:
                raise UserError("model.count_prior needs item clusters (item metadata with a "
                                "cluster per item, and model.cluster_input not false)")
            if config.count_prior_item_score:
                self.item_score = nn.Embedding(num_items, 1)
                nn.init.zeros_(self.item_score.weight)
            recent = 2 * len(RECENT_COUNT_DECAYS) if config.count_prior_recency else 0
            self.count_scale = nn.Parameter(torch.zeros(2 + recent))
        self.item_score_rate, self.count_scale_rate = float(config.dim), math.sqrt(config.dim)
        if config.chrono_init:
            self._chrono_init(config.chrono_max_memory or config.max_len - 1)  # 0 is refused

    def _chrono_init(self, longest: int) -> None:
        """Chrono initialisation (after Tallec & Ollivier, 2018, with log-uniform time scales):
        unit j's update gate starts at sigmoid(log T_j), T_j log-uniform in [1, longest],
        so the unit keeps T_j / (1 + T_j) of its state per event, a memory of about 1 + T_j
        events. The units span every scale equally, from those that follow the last event
        (what a response to a dislike needs) to those that average the whole history (what
        a user's taste needs; PyTorch's default initialisation starts every unit at about one
        event). PyTorch's GRU keeps z of the old state, h' = (1 - z) n + z h; the gates' rows
        are ordered r, z, n."""
        H = self.config.dim
        top = math.log(max(longest, 1))
        with torch.no_grad():
            for layer in range(self.config.num_layers):
                b_ih = getattr(self.gru, f"bias_ih_l{layer}")
                b_hh = getattr(self.gru, f"bias_hh_l{layer}")
                b_ih[H:2 * H] = torch.empty(H).uniform_(0.0, top)  # log T_j
                b_hh[H:2 * H] = 0.0

    def encode(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        B, L = items.shape
        x = self.drop(self.embed(items, feedback, mask))
        lengths = mask.sum(1)
        # move each row's real events to the front (a no-op for right padding) ...
        first = torch.where(mask.any(1), mask.float().argmax(1), torch.zeros_like(lengths))
        pos = torch.arange(L, device=items.device)
        gather = ((pos[None, :] + first[:, None]) % L)
        x_front = torch.gather(x, 1, gather[..., None].expand(B, L, x.shape[-1]))
        if B == 0:  # packing refuses empty batches (e.g. a DDP rank's empty share of a batch);
            out, _ = self.gru(x_front)  # still run the GRU, so its parameters get (zero) grads
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x_front, lengths.clamp(min=1).cpu(),
                                                       batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=L)
        # ... and back to where they came from
        scatter = torch.empty_like(gather).scatter_(1, gather, pos.expand(B, L))
        out = torch.gather(out, 1, scatter[..., None].expand(B, L, out.shape[-1]))
        out = self.drop(out)
        if self.taste is not None:
            # causal running mean over each row's real events (padding embeds to zero, so the
            # cumulative sums ignore it on either padding side); at padding positions it is
            # the mean so far, which nothing reads
            count = mask.to(x.dtype).cumsum(1).clamp(min=1).unsqueeze(-1)
            out = out + self.taste(x.cumsum(1) / count)
        states = self.ln(self.proj(out))
        if self.count_scale is not None:
            states = torch.cat([states, self._count_state(items, feedback, mask, states.dtype)], -1)
        return states

    def _count_state(self, items: Tensor, feedback: Tensor, mask: Tensor,
                     dtype: torch.dtype) -> Tensor:
        """[B, L, (1 +) C] the count prior's part of the states: 1 (meets the item's score;
        only with ``count_prior_item_score``), then, over the C cluster rows,
        ``a * log((n_t(c) + 1) / (n_t + C))`` for the positive events 0..t (every real event
        for a model without feedback codes) plus ``b * log(...)`` the same for the skipped and
        disliked ones (none without codes); shares smoothed by one pseudo-event per cluster, so
        an empty history gives the uniform share. With ``count_prior_recency``, plus, for each
        decay d of :data:`RECENT_COUNT_DECAYS`, ``e_d * r_t(c)`` over every real event and
        ``f_d * r_t(c)`` over the skipped and disliked ones, ``r_t(c) = sum over events s <= t
        in cluster c of (1 - d) d^(t - s)`` (at most 1: a history all in c tends to 1). Every
        term meets the same one-hot of the item's cluster, so they share one block."""
        C = self.embed.cluster.num_embeddings  # the clusters and the unknown / padding row
        clusters = F.one_hot(self.embed.item_to_cluster[items], C).to(dtype)  # [B, L, C]
        codes = feedback.long()
        negative = mask & ((codes == Feedback.SKIP) | (codes == Feedback.DISLIKE))
        if self.config.feedback_input:
            kinds = (mask & (codes == Feedback.POSITIVE), negative)
        else:
            kinds = (mask, torch.zeros_like(mask))
        scale = self.count_scale.to(dtype) * self.count_scale_rate
        uniform = clusters.new_full((C,), 1.0 / C)
        prior = sum(torch.log(history_cluster_shares(clusters, counted, uniform)) * scale[j]
                    for j, counted in enumerate(kinds))
        if self.config.count_prior_recency:
            # [L, L] weights of event s at position t: (1 - d) d^(t - s) for s <= t. Padding
            # (zero in ``every`` and ``negative``) sits wholly before or after the real
            # events, so the lags between real events are the same on either padding side.
            # The counts are linear in the events, so each decay's two scaled counts are one
            # sum over events weighted e_d (every event) + f_d (a skip / dislike)
            L = items.shape[1]
            pos = torch.arange(L, device=items.device)
            lag = (pos[:, None] - pos[None, :]).to(dtype)
            every = mask.to(dtype)
            negative = (negative if self.config.feedback_input else torch.zeros_like(mask)).to(dtype)
            n = len(RECENT_COUNT_DECAYS)
            for j, decay in enumerate(RECENT_COUNT_DECAYS):
                w = torch.where(lag >= 0, (1 - decay) * decay ** lag.clamp(min=0),
                                lag.new_zeros(()))
                weighted = every * scale[2 + j] + negative * scale[2 + n + j]  # [B, L]
                prior = prior + torch.einsum("ts,bsc->btc", w, clusters * weighted.unsqueeze(-1))
        if self.item_score is None:
            return prior
        return torch.cat([clusters.new_ones(*items.shape, 1), prior], -1)

    def _count_rows(self, ids: Tensor, dtype: torch.dtype) -> Tensor:
        """[..., (1 +) C] the count prior's part of the items' rows: the item's score (with
        ``count_prior_item_score``), then its cluster's one-hot (meeting the terms of
        :meth:`_count_state`). The whole table then holds V x (1 + C) more floats: fine for
        tens of clusters, not for thousands."""
        C = self.embed.cluster.num_embeddings
        onehot = F.one_hot(self.embed.item_to_cluster[ids], C).to(dtype)
        if self.item_score is None:
            return onehot
        return torch.cat([self.item_score(ids).to(dtype) * self.item_score_rate, onehot], -1)

    def item_table(self) -> Tensor:
        if self.output is not None:
            table = self.output.weight
        else:
            table = self.embed.table(self.num_items)
        if self.count_scale is not None:  # [V, D + 1 + C]
            ids = torch.arange(self.num_items, device=table.device)
            table = torch.cat([table, self._count_rows(ids, table.dtype)], 1)
        return table

    def item_rows(self, rows: Tensor) -> Tensor:
        if self.output is not None:
            emb = self.output(rows)
        else:
            emb = self.embed.item_repr(rows)
        if self.count_scale is not None:
            emb = torch.cat([emb, self._count_rows(rows, emb.dtype)], -1)
        return emb

    def row_tables(self) -> list[nn.Embedding]:
        return self.embed.row_tables() + [t for t in (self.output, self.item_score) if t is not None]
