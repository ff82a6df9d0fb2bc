"""What a model sees of a history: the inference-side view of a training objective.

An objective decides two things about a model's inputs, at training and at inference alike:
which events enter a history (an *input filter*: ``filter_history`` hides dislikes) and whether
the model sees each event's feedback code (``positive_only`` sees item ids only). Everything
that scores histories (evaluation, recommendation, counterfactuals, the closed loop) needs this
view and nothing else of the objective; the training-side rules (which events are targets, with
which term and weight) live with the objectives in :mod:`negrec.train.objectives`.
"""

from __future__ import annotations

from dataclasses import dataclass

from negrec.data.collate_config import CollateConfig
from negrec.data.feedback import FEEDBACK_TYPES, Feedback, parse_feedback

__all__ = ["ModelInputs"]


@dataclass(frozen=True)
class ModelInputs:
    """``events``: the feedback types whose events enter a history (others are dropped, as if
    they had not happened); ``codes``: whether the model sees each event's feedback code (a
    model without codes sees a disliked item as an ordinary history item)."""

    events: frozenset[Feedback] = frozenset(FEEDBACK_TYPES)
    codes: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", frozenset(parse_feedback(f) for f in self.events))
        if Feedback.PAD in self.events:
            raise ValueError("ModelInputs.events cannot contain PAD")

    def collate_config(self, max_len: int) -> CollateConfig:
        """The collator settings of inference batches: the last ``max_len`` visible events of
        each history, left-padded (training adds targets: :meth:`negrec.train.objectives.Objective.collate_config`)."""
        return CollateConfig(max_len=max_len, input_feedback=self.events)
