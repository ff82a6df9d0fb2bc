"""How events become a batch: the input filter, the target rules and the window layout that
the native collator (:mod:`negrec.data.collate`) and its Python reference
(:mod:`negrec.data.collate_reference`) both follow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from negrec.data.feedback import FEEDBACK_TYPES, NUM_FEEDBACK_CODES, Feedback, parse_feedback

__all__ = ["CollateConfig", "TargetRule"]


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
