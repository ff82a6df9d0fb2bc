"""Feedback types of an event, one enum shared with the C++ code (csrc/data/feedback.h)."""

from __future__ import annotations

from enum import IntEnum
from typing import Mapping

from negrec.errors import UserError


class Feedback(IntEnum):
    """What the user did with an item. Codes are stored as int8; 0 is padding.

    - ``POSITIVE``: watched / liked / rated high (a long dwell).
    - ``NEUTRAL``: consumed without a clear signal (a middling rating).
    - ``SKIP``: implicit negative (skipped, short dwell).
    - ``DISLIKE``: explicit negative (dislike, "not interested", a low rating); the item was
      consumed and then disliked, like the paper's "positive + dislike" action.
    """

    PAD = 0
    POSITIVE = 1
    NEUTRAL = 2
    SKIP = 3
    DISLIKE = 4

    @property
    def label(self) -> str:
        return self.name.lower()


#: The real feedback types (everything but padding), in code order.
FEEDBACK_TYPES: tuple[Feedback, ...] = tuple(f for f in Feedback if f is not Feedback.PAD)
NUM_FEEDBACK_CODES = len(Feedback)


def parse_feedback(value: str | int | Feedback) -> Feedback:
    """``"dislike"``, ``"DISLIKE"``, ``4`` or ``Feedback.DISLIKE`` -> ``Feedback.DISLIKE``."""
    if isinstance(value, Feedback):
        return value
    if isinstance(value, int):
        try:
            return Feedback(value)
        except ValueError:
            raise UserError(f"unknown feedback code {value}; expected one of "
                             f"{[int(f) for f in Feedback]}") from None
    key = str(value).strip().lower()
    for f in Feedback:
        if f.label == key:
            return f
    raise UserError(f"unknown feedback {value!r}; expected one of "
                     f"{[f.label for f in FEEDBACK_TYPES]}")


#: The feedback-map entry that gives every label not listed its meaning.
OTHER_LABELS = "*"

_BY_NAME = {f.label: f for f in FEEDBACK_TYPES}


class FeedbackLabels:
    """Raw feedback labels of a log -> :class:`Feedback`, through an optional map.

    A label, matched without surrounding spaces and case, means: its entry in ``mapping`` if it
    has one; else the feedback type it names (positive, neutral, skip, dislike); else the
    ``"*"`` entry of ``mapping`` if there is one; else nothing (``None``: the caller reports
    it). Numbers are never read as feedback codes, so a log labelled ``1`` / ``0`` needs a map.
    Map values must be feedback names; a label mapped twice to different types is an error.
    """

    def __init__(self, mapping: Mapping[str, str] | None = None):
        self.mapping: dict[str, Feedback] = {}
        self.other: Feedback | None = None
        for raw, name in (mapping or {}).items():
            key = self.key(raw)
            target = _BY_NAME.get(self.key(name))
            if not key or target is None:
                raise UserError(f"feedback map entry {raw!r} -> {name!r}: expected a non-empty "
                                 f"label mapped to one of {', '.join(_BY_NAME)}")
            if key == OTHER_LABELS:
                self.other = target
            elif self.mapping.setdefault(key, target) is not target:
                raise UserError(f"feedback map: label {raw!r} is mapped to both "
                                 f"{self.mapping[key].label} and {target.label} (labels are "
                                 "matched without case and surrounding spaces)")

    @staticmethod
    def key(label: str) -> str:
        """How labels are matched: without surrounding spaces, in lower case."""
        return str(label).strip().lower()

    def __call__(self, label: str) -> Feedback | None:
        key = self.key(label)
        for meaning in (self.mapping.get(key), _BY_NAME.get(key)):
            if meaning is not None:
                return meaning
        return self.other
