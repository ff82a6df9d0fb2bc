"""The training objectives, one declarative registry: each objective says what the model sees
(:class:`~negrec.models.inputs.ModelInputs`, the inference-side view) and, per feedback type,
which loss term a target event of that type gets (the training-side rules). Behaviour is never
keyed on an objective's name: everything reads its spec.

The four objectives of the reference paper (docs/objectives.md has the table, the reasons and
the figures behind the default weights):

- ``positive_only``: every event's item, no feedback codes; positives are targets;
- ``input_only``: every event's item and feedback code; positives are targets;
- ``input_ntr``: as input_only, plus the not-to-recommend term for dislikes and skips;
- ``filter_history``: dislikes removed from the histories, no codes; positives are targets.

Terms: :attr:`Term.POSITIVE` trains ``-w log p`` (the softmax term, label +1),
:attr:`Term.NTR` trains ``-w log(1 - p)`` (the not-to-recommend term, label -1); a feedback type
without a term is not a target. ``w`` is the objective's weight for that feedback type (a
weight of 0 turns the term off). Weights are per feedback type, nested under the objective in
the training configuration (``objective: {name: input_ntr, weights: {dislike: 50}}``); a weight
not given takes :data:`DEFAULT_WEIGHTS`. The dislike weight may be :data:`AUTO` (the default): it is
then chosen per log on validation events before training (:mod:`negrec.experiments.tuning`;
``negrec train`` does so), so one model is never trained with it.

Adding an objective: one :class:`ObjectiveSpec` entry in :data:`OBJECTIVES` (see
docs/contributing.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

from negrec.data.collate_config import CollateConfig, TargetRule
from negrec.data.feedback import FEEDBACK_TYPES, Feedback
from negrec.errors import UserError
from negrec.models.inputs import ModelInputs

__all__ = ["AUTO", "DEFAULT_WEIGHTS", "DISLIKE_WEIGHT_GRID", "OBJECTIVES", "Objective", "ObjectiveSpec", "Term",
           "get_objective"]


class Term(Enum):
    """The loss term a target event gets (its collator label)."""

    POSITIVE = 1  # -w log p: recommend it
    NTR = -1  # -w log(1 - p): do not recommend it


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective: ``inputs`` (what the model sees) and ``terms`` (feedback type -> the term
    its target events train; types not listed are not targets)."""

    name: str
    inputs: ModelInputs
    terms: Mapping[Feedback, Term]
    summary: str


_EVERY_EVENT = frozenset(FEEDBACK_TYPES)

OBJECTIVES: dict[str, ObjectiveSpec] = {spec.name: spec for spec in (
    ObjectiveSpec("positive_only", ModelInputs(_EVERY_EVENT, codes=False),
                  {Feedback.POSITIVE: Term.POSITIVE},
                  "no negative signals: disliked items are ordinary history items"),
    ObjectiveSpec("input_only", ModelInputs(_EVERY_EVENT, codes=True),
                  {Feedback.POSITIVE: Term.POSITIVE},
                  "feedback codes as inputs, positives as targets"),
    ObjectiveSpec("input_ntr", ModelInputs(_EVERY_EVENT, codes=True),
                  {Feedback.POSITIVE: Term.POSITIVE, Feedback.DISLIKE: Term.NTR,
                   Feedback.SKIP: Term.NTR},
                  "feedback codes as inputs; dislikes and skips with the not-to-recommend term"),
    ObjectiveSpec("filter_history", ModelInputs(_EVERY_EVENT - {Feedback.DISLIKE}, codes=False),
                  {Feedback.POSITIVE: Term.POSITIVE},
                  "dislikes removed from the histories"),
)}

#: The weight that is chosen per log: the dislike weight set to this is chosen on the
#: validation events from a small grid (negrec.experiments.tuning: one weight does not serve
#: every log; docs/generalization.md, "The dislike weight chosen per log").
AUTO = "auto"
#: The weight of each feedback type's term when the configuration does not give one (the
#: reasons: docs/objectives.md). Feedback types an objective has no term for ignore theirs.
DEFAULT_WEIGHTS: dict[str, float | str] = {"positive": 1.0, "dislike": AUTO, "skip": 1.0}
#: The feedback types whose weight may be AUTO (the ones the tuning chooses).
AUTO_WEIGHTS = frozenset({"dislike"})
#: The dislike weights an AUTO weight is chosen from, ascending (20 first: the weight of
#: docs/objectives.md; 60 and 100, the weights screened on the simulated worlds and ml-100k:
#: docs/generalization_screening.md).
DISLIKE_WEIGHT_GRID: tuple[float, ...] = (20.0, 60.0, 100.0)

_FEEDBACK_NAMES = tuple(f.label for f in FEEDBACK_TYPES)


def _default_weights() -> dict[str, float]:
    return dict(DEFAULT_WEIGHTS)


@dataclass
class Objective:
    """A training objective as configured: the registered ``name`` and a weight per feedback
    type (missing ones are filled from :data:`DEFAULT_WEIGHTS`; every weight finite and >= 0).
    The configuration section ``objective`` is exactly this."""

    name: str = field(default="input_ntr", metadata={
        "help": "the training objective (docs/objectives.md)", "choices": lambda: tuple(OBJECTIVES)})
    weights: dict[str, float | str] = field(default_factory=_default_weights)  # weight per feedback type: positive (r), dislike (w_dislike; auto: chosen per log on validation events, as negrec tune does), skip (w_skip)

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise UserError(f"objective must be one of {', '.join(OBJECTIVES)}; got {self.name!r}")
        unknown = [k for k in self.weights if k not in _FEEDBACK_NAMES]
        if unknown:
            raise UserError(f"objective.weights: unknown feedback type {unknown[0]!r}; expected "
                            f"some of {', '.join(_FEEDBACK_NAMES)}")
        for key, value in self.weights.items():
            if value == AUTO and key in AUTO_WEIGHTS:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                also = f" (or {AUTO})" if key in AUTO_WEIGHTS else ""
                raise UserError(f"objective weight {key} must be a finite number >= 0{also}; got "
                                f"{value!r}")
        self.weights = {**DEFAULT_WEIGHTS, **{k: v if v == AUTO else float(v)
                                              for k, v in self.weights.items()}}

    @property
    def spec(self) -> ObjectiveSpec:
        return OBJECTIVES[self.name]

    @property
    def inputs(self) -> ModelInputs:
        """What the model sees (the inference-side view)."""
        return self.spec.inputs

    @property
    def chooses_dislike_weight(self) -> bool:
        """Whether the dislike weight is :data:`AUTO` and this objective has a term for
        dislikes (its weight must be chosen before a model is trained; objectives without
        the term ignore the weight)."""
        return self.weights.get("dislike") == AUTO and Feedback.DISLIKE in self.spec.terms

    def weight(self, feedback: Feedback) -> float:
        value = self.weights.get(feedback.label, 0.0)
        if value == AUTO:
            raise UserError(f"objective.weights.{feedback.label} is {AUTO}: it is chosen on the "
                            "validation events before training (negrec train, negrec tune); "
                            "to train one model, give it a number")
        return value

    def targets(self) -> dict[Feedback, TargetRule]:
        """Feedback type -> collator rule (label and weight) of its target events; a term whose
        weight is 0 is off (label 0)."""
        return {f: TargetRule(term.value, self.weight(f)) if self.weight(f) > 0 else TargetRule(0)
                for f, term in self.spec.terms.items()}

    @property
    def trains_ntr(self) -> bool:
        """Whether some target events get the not-to-recommend term (with a weight > 0)."""
        return any(rule.label == Term.NTR.value for rule in self.targets().values())

    def collate_config(self, max_len: int, *, random_crop: bool = False, left_pad: bool = True
                       ) -> CollateConfig:
        """The collator settings of training batches (inputs and targets)."""
        return CollateConfig(max_len=max_len, input_feedback=self.inputs.events,
                             targets=self.targets(), random_crop=random_crop, left_pad=left_pad)

    def to_dict(self) -> dict:
        return {"name": self.name, "weights": dict(self.weights)}


def get_objective(name: str, weights: Mapping[str, float] | None = None) -> Objective:
    """The registered objective ``name`` with ``weights`` (feedback name -> weight; the rest
    default)."""
    return Objective(name, dict(weights or {}))
