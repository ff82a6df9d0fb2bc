"""Feedback types of an event, one enum shared with the C++ code (csrc/data/feedback.h)."""

from __future__ import annotations

from enum import IntEnum


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
            raise ValueError(f"unknown feedback code {value}; expected one of "
                             f"{[int(f) for f in Feedback]}") from None
    key = str(value).strip().lower()
    for f in Feedback:
        if f.label == key:
            return f
    raise ValueError(f"unknown feedback {value!r}; expected one of "
                     f"{[f.label for f in FEEDBACK_TYPES]}")
