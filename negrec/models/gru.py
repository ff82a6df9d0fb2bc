"""A GRU over the events (the reference paper's retrieval model is an RNN)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from negrec.models.base import SequentialRecommender
from negrec.models.config import ModelConfig
from negrec.models.embedding import EventEmbedding
from negrec.models.registry import register_model

__all__ = ["GRURec"]


@register_model("gru")
class GRURec(SequentialRecommender):
    """GRU over the events (the reference paper's retrieval model is an RNN). Histories are
    packed, so padding never enters the recurrence, whatever the padding side."""

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
        return self.ln(self.proj(out))

    def item_table(self) -> Tensor:
        if self.output is not None:
            return self.output.weight
        return self.embed.table(self.num_items)

    def item_rows(self, rows: Tensor) -> Tensor:
        if self.output is not None:
            return self.output(rows)
        return self.embed.item_repr(rows)

    def row_tables(self) -> list[nn.Embedding]:
        return self.embed.row_tables() + ([self.output] if self.output is not None else [])
