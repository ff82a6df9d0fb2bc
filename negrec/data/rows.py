"""Where the events of a log's rows lie in its arrays (:class:`EventRows`), and reading rows
of events in chunks, so that work over all of a log's events needs memory for one chunk, not
for a copy of the events.

An :class:`~negrec.data.log.EventLog` built from arrays lays its users' events end to end (CSR:
row u is ``offsets[u]:offsets[u + 1]``). A part of a split (:class:`~negrec.data.log_view.
EventLogView`) is rows of the arrays of the log it was split from: row u is
``starts[u]:stops[u]``, events between rows left out (held-out events), or rows sharing events
(the histories of one user's held-out events). Both are :class:`EventRows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from negrec.data import store

__all__ = ["EventRows", "count_per_row", "gather_rows", "row_chunks"]

#: Events per chunk when reading rows of events.
CHUNK_EVENTS = 1 << 20


@dataclass(frozen=True)
class EventRows(store.HoldsMappedArrays):
    """Row r's events are ``items[starts[r]:stops[r]]`` (and the same slice of ``timestamps``,
    ``feedback``, ``strength``), in time order. ``starts`` / ``stops`` [R] int64; ``items``
    [N] int64, ``timestamps`` [N] int64, ``feedback`` [N] int8, ``strength`` [N] float32 or
    None. ``offsets`` [R + 1] int64 when the rows are the arrays end to end (CSR), else None."""

    starts: np.ndarray
    stops: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    feedback: np.ndarray
    strength: np.ndarray | None
    offsets: np.ndarray | None = None


def row_chunks(starts: np.ndarray, stops: np.ndarray, chunk: int | None = None
               ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(r0, r1, index): rows r0..r1-1 and the indices [M] int64 of their events, row after row,
    in runs of about ``chunk`` events (:data:`CHUNK_EVENTS`; at least one row per run)."""
    chunk = CHUNK_EVENTS if chunk is None else chunk
    lengths = stops - starts
    ends = np.cumsum(lengths)
    r0 = 0
    while r0 < len(lengths):
        before = int(ends[r0 - 1]) if r0 else 0
        r1 = max(int(np.searchsorted(ends, before + chunk, side="right")), r0 + 1)
        run = lengths[r0:r1]
        first = np.cumsum(run) - run  # each row's first position within the run
        yield r0, r1, np.repeat(starts[r0:r1] - first, run) + np.arange(int(run.sum()))
        r0 = r1


def gather_rows(values: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """[sum of lengths] the rows' events of ``values`` end to end (a row's events in order),
    gathered in chunks (no temporary of the whole size)."""
    out = np.empty(int((stops - starts).sum()), dtype=values.dtype)
    at = 0
    for _, _, index in row_chunks(starts, stops):
        out[at:at + len(index)] = values[index]
        at += len(index)
    return out


def count_per_row(values: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                  select: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """[R] int64: in each row, the events whose value ``select`` (values [M] -> bool [M])
    marks; read in chunks."""
    counts = np.zeros(len(starts), dtype=np.int64)
    for r0, r1, index in row_chunks(starts, stops):
        row = np.repeat(np.arange(r1 - r0), stops[r0:r1] - starts[r0:r1])
        counts[r0:r1] = np.bincount(row[select(values[index])], minlength=r1 - r0)
    return counts
