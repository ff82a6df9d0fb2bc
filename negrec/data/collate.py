"""Turning an event log into training and inference batches (the native collator).

A batch row is one user's window of events. With an input filter F (the feedback types the
model may see) the user's *kept* events are those whose feedback is in F, in time order;
events outside F are neither inputs nor targets. A training row holds up to L inputs and, at
each input position j, the *next* kept event as its target, labelled and weighted through the
feedback table (e.g. positive -> (+1, r), dislike -> (-1, w_dislike), neutral -> (0, 0)).
An inference row holds the last L kept events and no targets.

Layout of every [B, L] tensor: left-padded by default (the most recent event last), padding
item id ``pad_item`` (models use ``V``), padding feedback code ``Feedback.PAD`` (0), target
label 0 and weight 0 at padding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from negrec.data.feedback import FEEDBACK_TYPES, NUM_FEEDBACK_CODES, Feedback, parse_feedback
from negrec.data.log import EventLog
from negrec.data.samplers import NegativeSampler, _seed_from

__all__ = ["Batch", "CollateConfig", "Collator", "TargetRule"]


@dataclass(frozen=True)
class TargetRule:
    """Label (+1 positive, -1 negative feedback, 0 ignore) and weight of a target event."""

    label: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.label not in (-1, 0, 1):
            raise ValueError(f"TargetRule.label must be -1, 0 or +1; got {self.label}")
        if not self.weight >= 0:
            raise ValueError(f"TargetRule.weight must be >= 0; got {self.weight}")


def _default_targets() -> dict[Feedback, TargetRule]:
    return {Feedback.POSITIVE: TargetRule(1, 1.0)}


@dataclass(frozen=True)
class CollateConfig:
    """How events become a batch.

    - ``max_len``: L, positions per row;
    - ``input_feedback``: the input filter (feedback types kept as inputs);
    - ``targets``: feedback type -> :class:`TargetRule`; types not listed get label 0;
    - ``left_pad``: real events at the right end of each row (default) or at the left;
    - ``random_crop``: training rows take a uniformly random window of a long history
      instead of the most recent one (augmentation);
    """

    max_len: int = 50
    input_feedback: frozenset[Feedback] = frozenset(FEEDBACK_TYPES)
    targets: Mapping[Feedback, TargetRule] = field(default_factory=_default_targets)
    left_pad: bool = True
    random_crop: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_len, int) or self.max_len <= 0:
            raise ValueError(f"CollateConfig.max_len must be a positive int; got {self.max_len!r}")
        object.__setattr__(self, "input_feedback",
                           frozenset(parse_feedback(f) for f in self.input_feedback))
        if Feedback.PAD in self.input_feedback:
            raise ValueError("CollateConfig.input_feedback cannot contain PAD")
        targets = {}
        for f, rule in dict(self.targets).items():
            f = parse_feedback(f)
            if f is Feedback.PAD:
                raise ValueError("CollateConfig.targets cannot contain PAD")
            if not isinstance(rule, TargetRule):
                rule = TargetRule(*rule) if isinstance(rule, (tuple, list)) else TargetRule(**rule)
            targets[f] = rule
        object.__setattr__(self, "targets", targets)

    def tables(self) -> tuple[list[bool], list[int], list[float]]:
        """Per feedback code: input allowed, target label, target weight."""
        allowed = [False] * NUM_FEEDBACK_CODES
        labels = [0] * NUM_FEEDBACK_CODES
        weights = [0.0] * NUM_FEEDBACK_CODES
        for f in self.input_feedback:
            allowed[int(f)] = True
        for f, rule in self.targets.items():
            labels[int(f)] = rule.label
            weights[int(f)] = float(rule.weight) if rule.label != 0 else 0.0
        return allowed, labels, weights


@dataclass
class Batch:
    """One batch. Shapes: [B, L] unless noted; ``B`` rows (users), ``L`` positions.

    - ``users`` [B] int64 dense user ids;
    - ``input_items`` int64 (``pad_item`` at padding), ``input_feedback`` int8 codes;
    - ``mask`` bool, true at real input positions; ``lengths`` [B] int64;
    - ``target_items`` int64, ``target_labels`` int8 (+1/-1/0), ``target_weights`` float32
      (``None`` for inference batches);
    - ``neg_ids`` [K] int64, ``neg_logq`` [K] float32 and ``target_logq`` float32 when a
      sampler is attached.
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

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(**{f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v)
                        for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})

    def pin_memory(self) -> "Batch":
        return Batch(**{f.name: (v.pin_memory() if isinstance(v, Tensor) else v)
                        for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})

    @property
    def num_targets(self) -> int:
        """Supervised positions (label != 0)."""
        return 0 if self.target_labels is None else int((self.target_labels != 0).sum())


def _integer_array(values, name: str) -> np.ndarray:
    """int64 array of ``values``; refuses non-integer dtypes (a float user index such as 1.7
    would otherwise be truncated to user 1 without a word)."""
    arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Collator: {name} must be integers; got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class Collator:
    """Builds batches from an :class:`EventLog` with the C++ collator (GIL released).

    Usable as a ``torch.utils.data.DataLoader`` ``collate_fn`` over a dataset of user indices
    (also with worker processes; it pickles as its arrays). ``threads`` > 1 fills rows in
    parallel on torch's intra-op pool; results never depend on it. Randomness (random crops,
    negatives) comes from ``generator`` or torch's default generator, which DataLoader seeds
    per worker, so runs are reproducible.
    """

    def __init__(self, log: EventLog, config: CollateConfig = CollateConfig(), *,
                 sampler: NegativeSampler | None = None, with_targets: bool = True,
                 threads: int = 1, generator: torch.Generator | None = None):
        from negrec._extension import _C

        if _C is None:
            raise RuntimeError("negrec.data.Collator needs the compiled extension negrec._C; "
                               "use negrec.data.collate_reference.collate_python without it")
        log.validate()
        self.num_items = log.num_items
        self.pad_item = log.num_items
        self.config, self.sampler, self.with_targets = config, sampler, with_targets
        self.threads, self.generator = int(threads), generator
        self._offsets = torch.from_numpy(log.offsets)
        self._items = torch.from_numpy(log.items)
        self._feedback = torch.from_numpy(log.feedback)
        self._tables = config.tables()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["generator"] = None  # generators do not pickle; workers use their seeded default
        return state

    def __call__(self, users: Sequence[int] | Tensor | np.ndarray, ends: Tensor | None = None) -> Batch:
        from negrec._extension import _C

        users_t = torch.as_tensor(_integer_array(users, "users"))
        if users_t.dim() != 1:
            raise ValueError(f"Collator: users must be a 1-D list of user indices; got shape "
                             f"{list(users_t.shape)}")
        if ends is not None:
            ends = torch.as_tensor(_integer_array(ends, "ends"))
        allowed, labels, weights = self._tables
        seed = _seed_from(self.generator) if self.config.random_crop and self.with_targets else 0
        (in_items, in_fb, tg_items, tg_labels, tg_weights, mask, lengths) = _C.collate(
            self._offsets, self._items, self._feedback, users_t, ends, self.num_items,
            self.config.max_len, self.config.left_pad, self.pad_item, allowed, labels, weights,
            self.config.random_crop, self.with_targets, seed, self.threads)
        batch = Batch(users=users_t, input_items=in_items, input_feedback=in_fb, mask=mask,
                      lengths=lengths, target_items=tg_items, target_labels=tg_labels,
                      target_weights=tg_weights)
        if self.sampler is not None and self.with_targets:
            batch.neg_ids, batch.neg_logq = self.sampler.sample(batch, self.generator)
            batch.target_logq = self.sampler.log_prob(tg_items.clamp(max=self.num_items - 1))
        return batch
