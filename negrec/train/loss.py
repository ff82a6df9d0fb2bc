"""The training loss of one batch: user states -> fused sampled/full softmax + NTR loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from negrec.data.batch import Batch
from negrec.models.base import SequentialRecommender
from negrec.ops import fused_loss
from negrec.train.config import LossConfig

__all__ = ["LossParts", "batch_loss"]


@dataclass
class LossParts:
    total: Tensor  # sum over the batch's supervised positions of weight * row loss
    weight: Tensor  # sum of the weights of those positions (the mean's denominator)
    targets: int  # supervised positions (label != 0)


def batch_loss(model: SequentialRecommender, batch: Batch, config: LossConfig,
               low_precision: torch.dtype | None = None) -> LossParts:
    """Sum of the weighted row losses of ``batch`` (already on the model's device).

    Only positions with a non-zero label enter the op. ``low_precision`` (e.g. bfloat16 on
    CUDA) casts the op's inputs; otherwise they are float32. The caller divides by the
    (global) weight sum, which makes the mean exact across data-parallel ranks.
    """
    states = model.encode(batch.input_items, batch.input_feedback, batch.mask)
    sel = batch.target_labels != 0
    dtype = low_precision or torch.float32
    query = states[sel].to(dtype)
    target_ids = batch.target_items[sel]
    label = batch.target_labels[sel]
    weight = batch.target_weights[sel]
    if config.mode == "full":
        table = model.item_table().to(dtype)
        neg_ids = torch.arange(model.num_items, device=table.device)
        neg_emb, neg_logq, target_logq = table, None, None
        # F.embedding, not table[ids]: the backward of advanced indexing sums the gradient rows
        # of repeated ids in a thread-dependent order on the CPU, so two identical runs could
        # differ in the last bits; embedding's backward sums them in index order
        target_emb = F.embedding(target_ids, table)
    else:
        if batch.neg_ids is None:
            raise ValueError(f"loss.mode={config.mode!r} needs sampled negatives in the batch "
                             "(the collator has no sampler)")
        neg_ids = batch.neg_ids
        # only the rows of the targets and candidates, never the [V, D] table (same values and
        # gradients as gathering from it)
        target_emb, neg_emb = model.item_embeddings(target_ids, neg_ids, dtype=dtype)
        neg_logq = batch.neg_logq
        target_logq = batch.target_logq[sel]
    total = fused_loss(query, target_emb, neg_emb, target_ids=target_ids,
                       neg_ids=neg_ids, label=label, weight=weight, target_logq=target_logq,
                       neg_logq=neg_logq, temperature=config.temperature, reduction="sum")
    return LossParts(total=total, weight=weight.sum().to(total.dtype), targets=int(sel.sum()))
