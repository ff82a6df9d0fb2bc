"""Building the CSR layout of an :class:`~negrec.data.log.EventLog` from events in source order.

:func:`build_csr` sorts the events by user, then time (then the fraction of a unit below it),
ties in source order, and records in the load report the events that came out of time order
and the exact duplicates. It works on dense integer codes, so that a loader that dictionary-
encodes its ids (Arrow) and ``EventLog.from_events`` (numpy) share it.

Memory stays near the output arrays: one permutation, the outputs gathered in chunks (no
full-size temporary per array), and per-user-chunk temporaries for the report's checks. A
caller that hands its arrays over in a :class:`SourceEvents` (:func:`build_csr_from`) lets each
input go as soon as its sorted copy exists, so that inputs and outputs are not all alive at once
(the loaders do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CSR", "DUPLICATE_EVENTS", "OUT_OF_ORDER", "SourceEvents", "build_csr",
           "build_csr_from"]

#: The LoadReport note counting exact duplicate events (kept, not merged).
DUPLICATE_EVENTS = "duplicate events (same user, item, time and feedback; all kept)"
#: The LoadReport note counting events out of time order in the source (they are sorted).
OUT_OF_ORDER = "events out of time order in the source (sorted by time, ties in source order)"
#: Events per chunk of users when comparing each user's events in source order (the check's
#: temporaries are about 60 bytes per event of a chunk: ~16 MB).
_CHUNK_EVENTS = 1 << 18
#: Events per chunk when gathering an array into CSR order.
_GATHER_EVENTS = 1 << 20


@dataclass
class CSR:
    """Events grouped by user and sorted by time: ``offsets`` [U + 1] int64, and per event
    ``items`` [E] int64, ``timestamps`` [E] int64, ``feedback`` [E] int8, ``strength`` [E]
    float32 or None."""

    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    feedback: np.ndarray
    strength: np.ndarray | None


@dataclass
class SourceEvents:
    """E events in source order, handed over to :func:`build_csr_from`, which drops each array
    (sets the field to None) once it no longer needs it: ``users`` [E] dense user codes (any
    integer dtype), ``items`` [E] dense item ids (any integer dtype), ``timestamps`` [E] int64,
    ``feedback`` [E] int8, ``strength`` [E] float32-convertible or None, ``fractions`` [E]
    float64 or None (the part of each time below its integer timestamp: orders events within
    one unit; not stored)."""

    users: np.ndarray | None
    items: np.ndarray | None
    timestamps: np.ndarray | None
    feedback: np.ndarray | None
    strength: np.ndarray | None = None
    fractions: np.ndarray | None = None


def build_csr(users: np.ndarray, num_users: int, items: np.ndarray, timestamps: np.ndarray,
              feedback: np.ndarray, *, strength: np.ndarray | None = None,
              fractions: np.ndarray | None = None, report=None,
              user_ids: np.ndarray | None = None) -> CSR:
    """The CSR arrays of E events given in source order.

    ``users`` [E] dense user codes in ``0..num_users-1`` (any integer dtype), ``items`` [E]
    dense item ids, ``timestamps`` [E] int64, ``feedback`` [E] int8, ``strength`` [E] or
    None, ``fractions`` [E] float64 or None (the part of each time below its integer
    timestamp: orders events within one unit; not stored). With ``report`` (a LoadReport),
    notes the events
    out of time order in the source and the exact duplicates (same user, item, time and
    feedback), their examples naming the user by ``user_ids[code]``. The caller keeps its
    arrays (see :func:`build_csr_from` to hand them over).
    """
    source = SourceEvents(users, items, timestamps, feedback, strength, fractions)
    del users, items, timestamps, feedback, strength, fractions
    return build_csr_from(source, num_users, report=report, user_ids=user_ids)


def build_csr_from(source: SourceEvents, num_users: int, *, report=None,
                   user_ids: np.ndarray | None = None) -> CSR:
    """:func:`build_csr` of the events ``source`` holds, dropping each of its arrays once it
    is sorted (``source``'s fields are None afterwards): with no other reference to them, the
    peak memory is the permutation, the outputs and the inputs not yet sorted."""
    users = source.users
    n = len(users)
    ts = np.asarray(source.timestamps, dtype=np.int64)
    fractions = source.fractions
    # primary key user, then time (then its fraction); np.lexsort is stable: ties keep source order
    keys = (ts, users) if fractions is None else (fractions, ts, users)
    perm = np.lexsort(keys)
    del keys
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(_count(users, num_users), out=offsets[1:])
    source.users = users = None
    perm = _narrow(perm)
    if report is not None and n > 1:
        _note_out_of_order(report, perm, offsets, ts, fractions, user_ids)
    source.timestamps = None
    sorted_ts = _gather(ts, perm, np.int64)
    del ts
    source.fractions = None
    sorted_fractions = None if fractions is None else _gather(fractions, perm, np.float64)
    del fractions
    out_items = _gather(source.items, perm, np.int64)
    source.items = None
    out_feedback = _gather(source.feedback, perm, np.int8)
    source.feedback = None
    out_strength = None if source.strength is None else _gather(source.strength, perm, np.float32)
    source.strength = None
    del perm
    if report is not None and n > 1:
        _note_duplicates(report, offsets, out_items, sorted_ts, sorted_fractions, out_feedback,
                         user_ids)
    return CSR(offsets, out_items, sorted_ts, out_feedback, out_strength)


def _narrow(perm: np.ndarray) -> np.ndarray:
    """The permutation as int32 when its indices fit (half the memory while the arrays are
    gathered), converted in chunks."""
    if len(perm) >= 2**31:
        return perm
    out = np.empty(len(perm), dtype=np.int32)
    for start in range(0, len(perm), _GATHER_EVENTS):
        out[start:start + _GATHER_EVENTS] = perm[start:start + _GATHER_EVENTS]
    return out


def _count(codes: np.ndarray, size: int) -> np.ndarray:
    """[size] occurrences of each code in ``codes``, counted in chunks (np.bincount converts
    its input to int64: a full-size copy of int32 codes)."""
    counts = np.zeros(size, dtype=np.int64)
    for start in range(0, len(codes), _GATHER_EVENTS):
        counts += np.bincount(codes[start:start + _GATHER_EVENTS], minlength=size)
    return counts


def _gather(values, perm: np.ndarray, dtype) -> np.ndarray:
    """``values[perm]`` as ``dtype`` [E], gathered in chunks of :data:`_GATHER_EVENTS` (no
    full-size temporary when the dtypes differ). Values convert as ``astype`` would."""
    values = np.asarray(values)
    out = np.empty(len(perm), dtype=dtype)
    for start in range(0, len(perm), _GATHER_EVENTS):
        stop = start + _GATHER_EVENTS
        out[start:stop] = values[perm[start:stop]].astype(dtype, copy=False)
    return out


def _note_out_of_order(report, perm: np.ndarray, offsets: np.ndarray, ts: np.ndarray,
                       fractions: np.ndarray | None, user_ids: np.ndarray) -> None:
    """Notes the events earlier in time than their user's previous event in the source.

    Each user's events in source order are its source positions sorted. ``perm`` lists them by
    user in time order: a user whose positions there increase has its events in time order in
    the source, and no event out of order. For the others, sorting their positions (as one
    sort of (user, position) keys, per chunk of users) gives the source order to compare."""
    n = len(perm)
    descent = np.flatnonzero(perm[1:] < perm[:-1]) + 1  # a later event that came earlier
    if not len(descent):
        return
    users = np.unique(np.searchsorted(offsets, descent, side="right") - 1)
    back_total, example = 0, None
    for chunk in _chunks(users, offsets):
        lengths = offsets[chunk + 1] - offsets[chunk]
        local_user = np.repeat(np.arange(len(chunk), dtype=np.int64), lengths)
        starts = np.repeat(offsets[chunk] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        key = local_user * n + perm[starts + np.arange(len(local_user))]
        key.sort(kind="stable")
        src = key % n
        st = ts[src]
        earlier = st[1:] < st[:-1]
        if fractions is not None:
            sf = fractions[src]
            earlier |= (st[1:] == st[:-1]) & (sf[1:] < sf[:-1])
        back = earlier & (local_user[1:] == local_user[:-1])
        count = int(back.sum())
        if count:
            back_total += count
            if example is None:
                j = int(np.argmax(back)) + 1
                user = user_ids[chunk[local_user[j]]]
                example = f"user {_py(user)!r} at time {int(st[j])} after {int(st[j - 1])}"
    if back_total:
        report.note(OUT_OF_ORDER, example, back_total)


def _chunks(users: np.ndarray, offsets: np.ndarray):
    """``users`` (sorted) in runs of about :data:`_CHUNK_EVENTS` events (at least one user)."""
    sizes = np.cumsum(offsets[users + 1] - offsets[users])
    start = 0
    while start < len(users):
        base = sizes[start - 1] if start else 0
        stop = max(int(np.searchsorted(sizes, base + _CHUNK_EVENTS, side="right")), start + 1)
        yield users[start:stop]
        start = stop


def _note_duplicates(report, offsets: np.ndarray, items: np.ndarray, ts: np.ndarray,
                     fractions: np.ndarray | None, feedback: np.ndarray,
                     user_ids: np.ndarray) -> None:
    """Notes the exact duplicate events (same user, item, time and feedback; all kept).

    In (user, time) order, two duplicates share user, time and fraction with a neighbour; only
    those events are compared further (sorted by user, time, fraction, item, feedback, the
    first duplicate in that order is the example)."""
    n = len(items)
    same = ts[1:] == ts[:-1]
    if fractions is not None:
        same &= fractions[1:] == fractions[:-1]
    boundary = np.zeros(n, bool)
    boundary[offsets[1:-1][offsets[1:-1] < n]] = True  # first event of a user (not the first)
    same &= ~boundary[1:]
    if not same.any():
        return
    cand = np.zeros(n, bool)
    cand[1:] |= same
    cand[:-1] |= same
    idx = np.flatnonzero(cand)
    user = np.searchsorted(offsets, idx, side="right") - 1
    fields = [feedback[idx], items[idx]] + ([] if fractions is None else [fractions[idx]]) + \
        [ts[idx], user]
    order = np.lexsort(fields)
    ordered = [f[order] for f in fields]
    dup = np.logical_and.reduce([f[1:] == f[:-1] for f in ordered])
    if dup.any():
        j = int(np.argmax(dup)) + 1
        report.note(DUPLICATE_EVENTS, f"user {_py(user_ids[ordered[-1][j]])!r}, time "
                    f"{int(ordered[-2][j])}", int(dup.sum()))


def _py(value):
    """A numpy scalar as the Python value (an id's repr in a report example)."""
    return value.item() if isinstance(value, np.generic) else value
