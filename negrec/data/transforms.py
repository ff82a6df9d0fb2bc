"""Transformations of an :class:`EventLog` used to build controls."""

from __future__ import annotations

import dataclasses

import numpy as np

from negrec.data.log import EventLog

__all__ = ["permute_feedback"]


def permute_feedback(log: EventLog, seed: int) -> EventLog:
    """The same log with the feedback codes shuffled across all events (a placebo).

    Items, users, times and the overall share of each feedback type are unchanged; only the
    link between an event and its feedback is broken. A model trained on it sees feedback
    codes with the same frequencies as the real ones but no meaning, which makes it the
    control for what a feedback-aware model does when an input code merely changes.
    """
    rng = np.random.default_rng([seed, 0x9E37])
    feedback = log.feedback[rng.permutation(log.num_events)]
    return dataclasses.replace(log, feedback=feedback,
                               strength=None if log.strength is None else log.strength.copy(),
                               source=f"{log.source} [feedback permuted, seed {seed}]")
