"""The rows of a training epoch: windows of users' histories, each ending at a target."""

from __future__ import annotations

import numpy as np

from negrec.data.feedback import Feedback

__all__ = ["training_windows"]


def training_windows(log, input_feedback, max_len: int,
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(users, ends) of the training rows: each user's kept events tiled by windows of
    ``max_len`` targets from the most recent backwards, so every kept event after the first
    is a target once per epoch (``ends`` counts kept events: the collator's ``ends``).

    With ``rng``, the windows below the most recent one are shifted by a random offset per user
    and epoch: they end at n - off, n - off - L, ... with off uniform in [1, L], so the first
    two windows overlap by L - off targets (still every target at least once). Without it a
    model sees the very same windows every epoch and can memorise them (on data with many
    users and long histories it then learns little that transfers to other windows, such as
    the evaluation histories)."""
    allowed = np.zeros(len(Feedback), dtype=bool)
    for f in input_feedback:
        allowed[int(f)] = True
    kept = allowed[log.feedback].astype(np.int64)
    prefix = np.concatenate([[0], np.cumsum(kept)])
    n = prefix[log.offsets[1:]] - prefix[log.offsets[:-1]]
    eligible = np.flatnonzero(n >= 2)
    offsets = (rng.integers(1, max_len + 1, len(eligible)) if rng is not None
               else np.full(len(eligible), max_len, np.int64))
    users, ends = [], []
    for u, off in zip(eligible, offsets):
        e = np.concatenate([[n[u]], np.arange(n[u] - off, 1, -max_len)])
        users.append(np.full(len(e), u))
        ends.append(e)
    if not users:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(users).astype(np.int64), np.concatenate(ends).astype(np.int64)
