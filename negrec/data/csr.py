"""Building the CSR layout of an :class:`~negrec.data.log.EventLog` from events in source order.

:func:`build_csr` sorts the events by user, then time (then the fraction of a unit below it),
ties in source order, and records in the load report the events that came out of time order
and the exact duplicates. It works on dense integer codes, so that a loader that dictionary-
encodes its ids (Arrow) and ``EventLog.from_events`` (numpy) share it.

It groups the events by user with a counting sort (linear time), then sorts by time only the
users whose events are not in time order in the source (logs come nearly in time order); the
users it sorts are the ones the report's out-of-order note counts.

Memory stays near the output arrays: one permutation, the outputs gathered in chunks (no
full-size temporary per array), and per-user-chunk temporaries for the time sort. A
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
#: Events per chunk of users when sorting the events of users out of time order by time (the
#: temporaries are about 60 bytes per event of a chunk: ~16 MB).
_CHUNK_EVENTS = 1 << 18
#: Events per chunk when gathering an array into CSR order.
_GATHER_EVENTS = 1 << 20
#: Bits of the user codes per pass of the radix sort that orders a chunk of events by user
#: (numpy's stable sort of uint16 keys is a radix sort).
_DIGIT_BITS = 16


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
    peak memory is the permutation, the outputs and the inputs not yet sorted.

    The events are grouped by user with a counting sort (linear time; source order within a
    user), then each user's events that are not in time order already are sorted by time:
    logs come nearly in time order, so that this second sort touches few users."""
    users = source.users
    n = len(users)
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(_count(users, num_users), out=offsets[1:])
    perm = _group_by_user(users, offsets)
    source.users = users = None
    ts = np.asarray(source.timestamps, dtype=np.int64)
    source.timestamps = None
    sorted_ts = _gather(ts, perm, np.int64)
    del ts
    fractions = source.fractions
    source.fractions = None
    sorted_fractions = None if fractions is None else _gather(fractions, perm, np.float64)
    del fractions
    _sort_users_by_time(perm, offsets, sorted_ts, sorted_fractions, report, user_ids)
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


def _group_by_user(users: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """[E] the stable permutation that groups the events by user code (source order within a
    user; int32 when the events fit, else int64): a counting sort, chunk by chunk of events.
    ``offsets`` [U + 1]: where each user's events start in the result.

    Each chunk's events are ordered by user stably (:func:`_order_by_code`) and written after
    the same users' events of the chunks before: the memory is the result and one chunk's
    temporaries, the time linear in the events."""
    n = len(users)
    perm = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
    next_at = offsets[:-1].copy()  # [U] where each user's next event goes
    for start in range(0, n, _CHUNK_EVENTS):
        codes = users[start:start + _CHUNK_EVENTS]
        order = _order_by_code(codes, len(offsets) - 1)
        grouped = codes[order]
        del codes
        heads = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
        sizes = np.diff(np.append(heads, len(grouped)))
        rank = np.arange(len(grouped)) - np.repeat(heads, sizes)  # among its user's in the chunk
        head_users = grouped[heads]
        perm[next_at[grouped] + rank] = order + start
        next_at[head_users] += sizes
    return perm


def _order_by_code(codes: np.ndarray, num_codes: int) -> np.ndarray:
    """[k] int64 the stable order of ``codes`` [k] (integers in ``0..num_codes-1``): a
    least-significant-digit radix sort over :data:`_DIGIT_BITS`-bit digits, each pass numpy's
    stable sort of uint16 keys (itself a radix sort: linear time), one pass per digit that
    ``num_codes - 1`` has."""
    mask = (1 << _DIGIT_BITS) - 1
    order = None
    shift = 0
    while True:
        keys = codes if order is None else codes[order]
        step = np.argsort(((keys >> shift) & mask).astype(np.uint16), kind="stable")
        order = step if order is None else order[step]
        shift += _DIGIT_BITS
        if max(num_codes - 1, 0) >> shift == 0:
            return order


def _sort_users_by_time(perm: np.ndarray, offsets: np.ndarray, ts: np.ndarray,
                        fractions: np.ndarray | None, report, user_ids) -> None:
    """Sorts each user's events by time (then fraction), stably, in place: ``perm`` [E] lists
    each user's events in source order, ``ts`` [E] int64 and ``fractions`` [E] float64 (or
    None) are their times in that order. An event earlier than its user's previous event in
    the source is out of time order: with ``report``, they are noted (the first, in user
    order, as the example); only the users that have one are sorted (by chunks of users)."""
    back = _descents(offsets, ts, fractions)
    if not len(back):
        return
    user_of = np.searchsorted(offsets, back, side="right") - 1
    if report is not None:
        j, user = int(back[0]), user_of[0]
        report.note(OUT_OF_ORDER, f"user {_py(user_ids[user])!r} at time {int(ts[j])} after "
                    f"{int(ts[j - 1])}", len(back))
    for chunk in _chunks(np.unique(user_of), offsets):
        lengths = offsets[chunk + 1] - offsets[chunk]
        local_user = np.repeat(np.arange(len(chunk), dtype=np.int64), lengths)
        starts = np.repeat(offsets[chunk] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        idx = starts + np.arange(len(local_user))
        keys = (ts[idx], local_user) if fractions is None else \
            (fractions[idx], ts[idx], local_user)
        take = idx[np.lexsort(keys)]  # stable: ties keep source order
        del keys
        perm[idx] = perm[take]
        ts[idx] = ts[take]
        if fractions is not None:
            fractions[idx] = fractions[take]


def _descents(offsets: np.ndarray, ts: np.ndarray, fractions: np.ndarray | None) -> np.ndarray:
    """[k] int64 the positions i of the events earlier in time (then fraction) than event
    i - 1 of the same user (``offsets``: where each user's events start), found in chunks."""
    n = len(ts)
    found = []
    for start in range(1, n, _GATHER_EVENTS):
        stop = min(start + _GATHER_EVENTS, n)
        now, before = ts[start:stop], ts[start - 1:stop - 1]
        earlier = now < before
        if fractions is not None:
            earlier |= (now == before) & (fractions[start:stop] < fractions[start - 1:stop - 1])
        found.append(np.flatnonzero(earlier) + start)
    back = np.concatenate(found) if found else np.zeros(0, np.int64)
    if len(back):  # the first event of a user follows another user's
        back = back[offsets[np.searchsorted(offsets, back, side="right") - 1] != back]
    return back


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
