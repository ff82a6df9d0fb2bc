"""Scoring whole catalogues: user states against every item, a chunk of users at a time.

One function, :func:`catalogue_scores`, serves top-K recommendation
(:meth:`~negrec.models.base.SequentialRecommender.topk`) and the held-out ranks of offline
evaluation (:func:`negrec.eval.metrics.held_out_ranks`), so both see the same scores and the
same exclusions.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["DEFAULT_MAX_SCORES", "catalogue_scores"]

#: At most this many scores (float32) are held at once: 64 MiB.
DEFAULT_MAX_SCORES = 1 << 24


def catalogue_scores(states: Tensor, table: Tensor, *,
                     exclude: Sequence[Tensor | np.ndarray] | None = None,
                     max_scores: int = DEFAULT_MAX_SCORES) -> Iterator[tuple[slice, Tensor]]:
    """Yields ``(rows, scores)``: ``scores`` [r, V] = ``states[rows] @ table.T`` for chunks of
    at most ``max(1, max_scores // V)`` rows of ``states`` [B, D] (``table`` [V, D], same dtype
    and device), so no [B, V] matrix is materialised for large B.

    ``exclude``: per row of ``states``, a 1-D array of item ids scored ``-inf`` (e.g. the row's
    history); ids outside ``[0, V)`` are ignored. The caller may change each yielded chunk."""
    if exclude is not None and len(exclude) != states.shape[0]:
        raise ValueError(f"exclude must have one entry per row ({states.shape[0]}); got "
                         f"{len(exclude)}")
    V = table.shape[0]
    chunk = max(1, max_scores // V)
    for r0 in range(0, states.shape[0], chunk):
        scores = states[r0:r0 + chunk] @ table.T
        if exclude is not None:
            _mask(scores, exclude[r0:r0 + chunk], V)
        yield slice(r0, r0 + scores.shape[0]), scores


def _mask(scores: Tensor, exclude: Sequence[Tensor | np.ndarray], V: int) -> None:
    """Sets ``scores[j, i] = -inf`` for every id ``i`` of ``exclude[j]`` in ``[0, V)``."""
    rows, cols = [], []
    for j, ids in enumerate(exclude):
        ids = torch.as_tensor(ids, device=scores.device)
        ids = ids[(ids >= 0) & (ids < V)]
        rows.append(torch.full_like(ids, j))
        cols.append(ids)
    if rows:
        scores[torch.cat(rows), torch.cat(cols)] = float("-inf")
