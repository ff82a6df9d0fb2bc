"""Frozen copy of ``EventLog.from_events`` as the row-by-row loaders built their logs (CSR
construction, and the load report's notes on events out of time order and duplicate events)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from negrec.data.feedback import Feedback
from negrec.data.log import DUPLICATE_EVENTS, EventLog, ItemMeta, LoadReport  # noqa: F401

__all__ = ["from_events"]


def _note_order_and_duplicates(report: LoadReport, users: np.ndarray, items: np.ndarray,
                               ts: np.ndarray, fractions: np.ndarray | None, fb: np.ndarray,
                               perm: np.ndarray, raw_users: np.ndarray) -> None:
    """Records in ``report`` the events that came out of time order (they are sorted) and the
    exact duplicates (same user, item, time and feedback; all kept). Times compare as
    (``ts``, ``fractions``) when the fractions below the integer timestamps are given."""
    # out of order: an event earlier in time than the user's previous event in the source
    src = np.lexsort((np.arange(len(users)), users))  # by user, in source order
    su, st = users[src], ts[src]
    earlier = st[1:] < st[:-1]
    if fractions is not None:
        sf = fractions[src]
        earlier |= (st[1:] == st[:-1]) & (sf[1:] < sf[:-1])
    back = (su[1:] == su[:-1]) & earlier
    if back.any():
        j = int(np.argmax(back)) + 1
        report.note("events out of time order in the source (sorted by time, ties in source order)",
                    f"user {raw_users[su[j]].item()!r} at time {int(st[j])} after {int(st[j - 1])}",
                    int(back.sum()))
    # in (user, time) order, duplicates of one event are adjacent unless other events share
    # their time: sort by every field that defines an event and compare neighbours
    fields = [fb[perm], items[perm]] + ([] if fractions is None else [fractions[perm]]) + \
        [ts[perm], users[perm]]
    key = np.lexsort(fields)
    ordered = [f[key] for f in fields]
    dup = np.logical_and.reduce([f[1:] == f[:-1] for f in ordered])
    if dup.any():
        j = int(np.argmax(dup)) + 1
        report.note(DUPLICATE_EVENTS, f"user {raw_users[ordered[-1][j]].item()!r}, time "
                    f"{int(ordered[-2][j])}", int(dup.sum()))


def _raw_array(values: Iterable) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr.astype(str)



def from_events(
    users: Iterable,
    items: Iterable,
    timestamps: Iterable,
    feedback: Iterable,
    *,
    strength: Iterable | None = None,
    item_meta: ItemMeta | None = None,
    source: str = "",
    report: LoadReport | None = None,
    time_fractions: Iterable[float] | None = None,
) -> "EventLog":
    """Build a log from per-event arrays of raw user ids, raw item ids, times, codes.

    Users get dense ids in sorted order of their raw ids. Items get the dense ids of
    ``item_meta`` (whose ``raw_ids`` define the catalogue) when given; an event whose item
    is not in it is an error. Without metadata, items are numbered in sorted raw-id order.
    Each user's events are sorted by time, stably (ties keep their input order).
    ``time_fractions`` [E] float (optional): the part of each event's time below its
    integer timestamp (a loader that floored fractional times passes it); it orders events
    that share a timestamp and is not stored.
    """
    users = _raw_array(users)
    raw_items = _raw_array(items)
    ts = np.asarray(timestamps, dtype=np.int64)
    fb = np.asarray(feedback, dtype=np.int8)
    n = len(users)
    for name, arr in (("items", raw_items), ("timestamps", ts), ("feedback", fb)):
        if len(arr) != n:
            raise ValueError(f"EventLog.from_events: {name} has {len(arr)} entries, users has {n}")
    if n and (fb.min() < Feedback.POSITIVE or fb.max() > Feedback.DISLIKE):
        bad = fb[(fb < Feedback.POSITIVE) | (fb > Feedback.DISLIKE)][0]
        raise ValueError(f"EventLog.from_events: feedback codes must be 1..4 "
                         f"(positive..dislike); got {bad}")
    st = None if strength is None else np.asarray(strength, dtype=np.float32)
    if st is not None and len(st) != n:
        raise ValueError(f"EventLog.from_events: strength has {len(st)} entries, users has {n}")
    frac = None if time_fractions is None else np.asarray(time_fractions, dtype=np.float64)
    if frac is not None and len(frac) != n:
        raise ValueError(f"EventLog.from_events: time_fractions has {len(frac)} entries, "
                         f"users has {n}")

    if item_meta is None:
        uniq, dense_items = np.unique(raw_items, return_inverse=True)
        item_meta = ItemMeta.anonymous(uniq)
    else:
        catalogue = _raw_array(item_meta.raw_ids)
        if catalogue.dtype.kind != raw_items.dtype.kind:
            catalogue, raw_items = catalogue.astype(str), raw_items.astype(str)
        order = np.argsort(catalogue, kind="stable")
        pos = np.searchsorted(catalogue[order], raw_items)
        pos = np.minimum(pos, max(len(catalogue) - 1, 0))
        found = (len(catalogue) > 0) & (catalogue[order][pos] == raw_items) if n else np.zeros(0, bool)
        if n and not np.all(found):
            missing = raw_items[~found]
            raise ValueError(f"EventLog.from_events: {len(missing)} events refer to items "
                             f"missing from the item metadata (e.g. item {missing[0]!r})")
        dense_items = order[pos] if n else np.zeros(0, np.int64)

    uniq_users, dense_users = np.unique(users, return_inverse=True)
    # primary key user, then time (then its fraction), then input position (stable ties)
    keys = (np.arange(n), ts, dense_users) if frac is None else \
        (np.arange(n), frac, ts, dense_users)
    perm = np.lexsort(keys)
    if report is not None and n > 1:
        _note_order_and_duplicates(report, dense_users, np.asarray(dense_items), ts, frac, fb,
                                   perm, uniq_users)
    counts = np.bincount(dense_users, minlength=len(uniq_users))
    offsets = np.zeros(len(uniq_users) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return EventLog(offsets=offsets, items=np.asarray(dense_items)[perm], timestamps=ts[perm],
               feedback=fb[perm], strength=None if st is None else st[perm],
               user_ids=uniq_users, item_meta=item_meta, source=source, report=report)

