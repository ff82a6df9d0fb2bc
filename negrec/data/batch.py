"""One batch of user histories, as the collator builds it and models and the loss read it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Batch"]


@dataclass
class Batch:
    """One batch. Shapes: [B, L] unless noted; ``B`` rows (users), ``L`` positions.

    - ``users`` [B] int64 dense user ids;
    - ``input_items`` int64 (``pad_item`` at padding), ``input_feedback`` int8 codes;
    - ``mask`` bool, true at real input positions; ``lengths`` [B] int64;
    - ``target_items`` int64, ``target_labels`` int8 (+1/-1/0), ``target_weights`` float32
      (``None`` for inference batches);
    - ``neg_ids`` [K] int64, ``neg_logq`` [K] float32 and ``target_logq`` float32 when a
      sampler is attached;
    - ``ntr_neg_ids`` [K'] int64: the candidates of the not-to-recommend term, when it has its
      own (uniform, no logQ correction: see :mod:`negrec.train.loss`).
    """

    users: Tensor
    input_items: Tensor
    input_feedback: Tensor
    mask: Tensor
    lengths: Tensor
    target_items: Tensor | None = None
    target_labels: Tensor | None = None
    target_weights: Tensor | None = None
    neg_ids: Tensor | None = None
    neg_logq: Tensor | None = None
    target_logq: Tensor | None = None
    ntr_neg_ids: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(**{f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v)
                        for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})

    def pin_memory(self) -> "Batch":
        return Batch(**{f.name: (v.pin_memory() if isinstance(v, Tensor) else v)
                        for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})
