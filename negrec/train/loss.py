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

    Only positions with a non-zero label enter the op. Rows labelled +1 score their target
    against the softmax term's candidates (all items, or the sampled ``neg_ids`` with logQ
    correction). Rows labelled -1 (the not-to-recommend term) do too, unless the batch carries
    their own candidates ``ntr_neg_ids`` (``loss.ntr_negatives`` > 0): then their ``p`` is the
    item's probability among itself and those K' items (drawn by popularity, count^alpha, or
    uniformly: ``loss.ntr_sampler``), uncorrected, i.e. how it ranks against items users
    typically meet. That ``p`` does not shrink with the catalogue (with the full softmax over
    V items it is about K'/V times smaller), so the term's pull ``w p`` keeps its scale on any
    data; it stays bounded by ``w`` and fades once the item scores below those candidates
    (docs/objectives.md). By default the term trains those candidates too (gradient
    ``-w p q_j`` on candidate j, q_j its share among them): each disliked target raises them a
    little, which widens what the model shows (fewer dislikes when simulated users consume its
    slates). Uniformly drawn candidates are mostly unpopular items, and raising them flattens
    the popularity the positives teach (a ranking cost, large on a steep popularity curve);
    popularity-drawn ones keep it. With ``loss.ntr_trains_candidates = false`` they are a
    fixed reference and get no gradient from the term (docs/generalization.md measures all
    three).

    ``low_precision`` (e.g. bfloat16 on CUDA) casts the op's inputs; otherwise they are
    float32. The caller divides by the (global) weight sum, which makes the mean exact across
    data-parallel ranks.
    """
    states = model.encode(batch.input_items, batch.input_feedback, batch.mask)
    dtype = low_precision or torch.float32
    labels = batch.target_labels
    supervised = labels != 0
    own_ntr = batch.ntr_neg_ids is not None
    softmax_rows = labels == 1 if own_ntr else supervised
    ntr_rows = labels == -1
    # the item ids whose embeddings the loss needs: candidates, the softmax rows' targets, and
    # with their own candidates the NTR rows' candidates and targets
    ids = [None, batch.target_items[softmax_rows]]
    if own_ntr:
        ids += [batch.ntr_neg_ids, batch.target_items[ntr_rows]]
    if config.mode == "full":  # every item is a candidate: the table is their embeddings
        table = model.item_table().to(dtype)
        candidates, candidate_emb = torch.arange(model.num_items, device=table.device), table
        at = ids  # an item's row of the table is its id
        neg_logq = target_logq = None
    else:
        if batch.neg_ids is None:
            raise ValueError(f"loss.mode={config.mode!r} needs sampled negatives in the batch "
                             "(the collator has no sampler)")
        candidates, neg_logq = batch.neg_ids, batch.neg_logq
        # only the rows of the ids the loss needs, never the [V, D] table: the same values and
        # gradients as gathering them from it, at no cost per catalogue item
        ids[0] = candidates
        table, at = model.item_subtable(*ids, dtype=dtype)
        candidate_emb = _rows_of(table, at[0])
        target_logq = batch.target_logq[softmax_rows]
    total = _rows_loss(states, table, at[1], batch, softmax_rows, candidates, candidate_emb,
                       neg_logq, target_logq, config.temperature, dtype)
    if own_ntr:
        ntr_candidate_emb = _rows_of(table, at[2])
        if not config.ntr_trains_candidates:  # candidates as a fixed reference (see above)
            ntr_candidate_emb = ntr_candidate_emb.detach()
        total = total + _rows_loss(states, table, at[3], batch, ntr_rows, batch.ntr_neg_ids,
                                   ntr_candidate_emb, None, None, config.temperature, dtype)
    weight = batch.target_weights[supervised].sum().to(total.dtype)
    return LossParts(total=total, weight=weight, targets=int(supervised.sum()))


def _rows_of(table: Tensor, ids: Tensor) -> Tensor:
    # F.embedding, not table[ids]: the backward of advanced indexing sums the gradient rows of
    # repeated ids in a thread-dependent order on the CPU, so two identical runs could differ
    # in the last bits; embedding's backward sums them in index order (same forward values)
    return F.embedding(ids, table)


def _rows_loss(states: Tensor, table: Tensor, target_at: Tensor, batch: Batch, rows: Tensor,
               candidates: Tensor, candidate_emb: Tensor, neg_logq: Tensor | None,
               target_logq: Tensor | None, temperature: float, dtype: torch.dtype) -> Tensor:
    """The fused loss (sum) of the batch positions ``rows`` [B, L] bool against the shared
    ``candidates`` [K] (item ids) with embeddings ``candidate_emb`` [K, D]; the targets'
    embeddings are the rows ``target_at`` [R] (R = rows.sum()) of ``table`` [N, D] (the whole
    item table, or the rows of the ids the loss needs)."""
    target_ids = batch.target_items[rows]
    return fused_loss(states[rows].to(dtype), _rows_of(table, target_at), candidate_emb,
                      target_ids=target_ids, neg_ids=candidates, label=batch.target_labels[rows],
                      weight=batch.target_weights[rows], target_logq=target_logq,
                      neg_logq=neg_logq, temperature=temperature, reduction="sum")
