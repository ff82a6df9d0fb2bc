"""SASRec: a causal transformer over the events (pre-LayerNorm blocks, padding-aware
attention)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negrec.errors import UserError
from negrec.models.base import SequentialRecommender
from negrec.models.config import ModelConfig
from negrec.models.embedding import EventEmbedding
from negrec.models.registry import register_model

__all__ = ["SASRec"]


class _CausalBlock(nn.Module):
    """Pre-LayerNorm transformer block with causal, padding-aware attention."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        B, L, D = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.ffn(self.ln2(x)))


@register_model("sasrec")
class SASRec(SequentialRecommender):
    """Self-attentive sequential recommender (Kang & McAuley 2018), pre-LN variant."""

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        if config.dim % config.num_heads:
            raise UserError(f"model.dim ({config.dim}) must be divisible by num_heads "
                            f"({config.num_heads})")
        if config.chrono_init:
            raise UserError("model.chrono_init initialises a GRU's update gates; "
                            "model.kind 'sasrec' has none (set chrono_init false or kind gru)")
        if config.history_mean:
            raise UserError("model.history_mean adds a running mean to a GRU's state; model.kind "
                            "'sasrec' attends over the whole history already (set history_mean "
                            "false or kind gru)")
        if config.count_prior:
            raise UserError("model.count_prior is implemented for model.kind 'gru' only (set "
                            "count_prior false or kind gru)")

    def __init__(self, config: ModelConfig, num_items: int, item_cluster=None, item_creator=None):
        super().__init__()
        self.config, self.num_items = config, num_items
        self.embed = EventEmbedding(config, num_items, item_cluster, item_creator)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_CausalBlock(config.dim, config.num_heads, config.dropout)
                                    for _ in range(config.num_layers))
        self.ln = nn.LayerNorm(config.dim)
        self.output = None if config.tied else nn.Embedding(num_items, config.dim)
        if self.output is not None:
            nn.init.normal_(self.output.weight, std=1.0 / math.sqrt(config.dim))

    def encode(self, items: Tensor, feedback: Tensor, mask: Tensor) -> Tensor:
        L = items.shape[1]
        x = self.drop(self.embed(items, feedback, mask))
        causal = torch.ones(L, L, dtype=torch.bool, device=items.device).tril()
        # a query may attend to earlier real events and to itself (padding rows then attend
        # to themselves only, avoiding all-masked rows)
        eye = torch.eye(L, dtype=torch.bool, device=items.device)
        attn_mask = (causal & (mask[:, None, :] | eye))[:, None]  # [B, 1, L, L]
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln(x)

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
