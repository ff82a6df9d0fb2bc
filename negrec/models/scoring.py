"""Scoring whole catalogues: user states against every item, a block of users and items at a
time.

One function, :func:`catalogue_blocks`, serves top-K recommendation
(:meth:`~negrec.models.base.SequentialRecommender.topk`) and the held-out ranks of offline
evaluation (:func:`negrec.eval.metrics.held_out_ranks`), so both see the same scores and the
same exclusions.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from negrec.cpu_load import adapt_threads

__all__ = ["BLOCK_ROWS", "BLOCK_SCORES", "DEFAULT_MAX_SCORES", "catalogue_blocks"]

#: At most this many scores (float32) are held at once: 64 MiB.
DEFAULT_MAX_SCORES = 1 << 24
#: Scores are computed in blocks of at most BLOCK_ROWS users by at most BLOCK_SCORES scores
#: (16 MiB): a block's item rows are read once for all of its users and its scores are used
#: while they are in the CPU's caches. (Whole-catalogue rows of 16 users each streamed the
#: [V, D] table once per 16 users and every score through memory: at 1M items, 4x slower.)
BLOCK_SCORES = 1 << 22
BLOCK_ROWS = 512


def catalogue_blocks(states: Tensor, table: Tensor, *,
                     exclude: Sequence[Tensor | np.ndarray] | None = None,
                     max_scores: int = DEFAULT_MAX_SCORES
                     ) -> Iterator[tuple[slice, slice, Tensor]]:
    """Yields ``(rows, items, scores)``: ``scores`` [r, c] = ``states[rows] @ table[items].T``
    (``states`` [B, D], ``table`` [V, D], same dtype and device). For each chunk of rows, the
    item blocks come in order and cover ``[0, V)``; a block holds at most
    ``min(max_scores, BLOCK_SCORES)`` scores (at least one row by one item), so no [B, V]
    matrix is materialised.

    ``exclude``: per row of ``states``, a 1-D array of item ids scored ``-inf`` (e.g. the row's
    history); ids outside ``[0, V)`` are ignored. The caller may change each yielded block."""
    if exclude is not None and len(exclude) != states.shape[0]:
        raise ValueError(f"exclude must have one entry per row ({states.shape[0]}); got "
                         f"{len(exclude)}")
    B, V = states.shape[0], table.shape[0]
    budget = max(1, min(max_scores, BLOCK_SCORES))
    n_rows = max(1, min(B, BLOCK_ROWS, budget))
    n_items = max(1, min(V, budget // n_rows))
    for r0 in range(0, B, n_rows):
        adapt_threads()  # a no-op unless the command line governs threads (negrec/cpu_load.py)
        rows = slice(r0, min(r0 + n_rows, B))
        excluded = None if exclude is None else _excluded(exclude[rows], V, states.device)
        for c0 in range(0, V, n_items):
            items = slice(c0, min(c0 + n_items, V))
            scores = states[rows] @ table[items].T
            if excluded is not None:
                row, col = excluded
                inside = (col >= items.start) & (col < items.stop)
                scores[row[inside], col[inside] - items.start] = float("-inf")
            yield rows, items, scores


def _excluded(exclude: Sequence[Tensor | np.ndarray], V: int,
              device: torch.device) -> tuple[Tensor, Tensor]:
    """(row, item) of every id ``i`` of ``exclude[row]`` in ``[0, V)``."""
    rows, cols = [], []
    for j, ids in enumerate(exclude):
        ids = torch.as_tensor(ids, device=device)
        ids = ids[(ids >= 0) & (ids < V)]
        rows.append(torch.full_like(ids, j))
        cols.append(ids)
    if not rows:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    return torch.cat(rows).long(), torch.cat(cols).long()
