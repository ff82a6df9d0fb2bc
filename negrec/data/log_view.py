"""An event log that is rows of another log's arrays: the parts of a split.

Splitting a log (:mod:`negrec.data.split`) holds out each user's last events and gives every
held-out event the history before it. Made as new arrays, the training part and the histories
were copies of nearly every event: resident memory grew by the log's size again (twice for a
store opened from disk, whose pages the copies could not share between processes). An
:class:`EventLogView` holds only where its rows lie (``starts`` / ``stops`` per row, O(rows))
and the arrays of the log it was split from, so that every process that splits an opened store
(DataLoader workers, DDP ranks) still shares its pages.
"""

from __future__ import annotations

import numpy as np

from negrec.data.feedback import FEEDBACK_TYPES, Feedback
from negrec.data.log import EventLog, ItemMeta, LoadReport
from negrec.data.rows import EventRows, gather_rows, row_chunks

__all__ = ["EventLogView"]

_EVENT_ARRAYS = ("items", "timestamps", "feedback", "strength")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


class EventLogView(EventLog):
    """An :class:`EventLog` whose user u has the events ``starts[u]:stops[u]`` of another
    log's arrays (:meth:`of`), without copying them: O(users) memory.

    It reads as the EventLog of those events. ``offsets`` (O(users)) is made at once; the event
    arrays (``items``, ``timestamps``, ``feedback``, ``strength``) only when read, then kept,
    read-only. What training and evaluation read (``lengths``, ``user_events``,
    ``event_rows``, ``item_counts``, ``feedback_counts``, ``stats``, ``select_users``, the
    collator, the training windows) reads the shared arrays and makes none of them.

    Its arrays cannot be replaced or written (reading the shared arrays, a change would not be
    seen); ``dataclasses.replace(view, ...)`` gives an :class:`EventLog` of new arrays. The
    arrays it shares must not change in place either.
    """

    def __new__(cls, *args, **kwargs):
        if args or kwargs:  # called with an EventLog's fields (dataclasses.replace): a new log
            return EventLog(*args, **kwargs)
        return super().__new__(cls)

    @classmethod
    def of(cls, rows: EventRows, starts: np.ndarray, stops: np.ndarray, *, user_ids: np.ndarray,
           item_meta: ItemMeta, source: str = "", report: LoadReport | None = None
           ) -> "EventLogView":
        """The log whose user u has the events ``starts[u]:stops[u]`` of ``rows``' arrays
        (``starts`` / ``stops`` [U] int64 into them; ``user_ids`` [U] the users' raw ids)."""
        view = cls.__new__(cls)  # (calling cls() would run the dataclass __init__)
        starts = _read_only(np.array(starts, dtype=np.int64))
        stops = _read_only(np.array(stops, dtype=np.int64))
        view._rows = EventRows(starts, stops, rows.items, rows.timestamps, rows.feedback,
                               rows.strength)
        offsets = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(stops - starts, out=offsets[1:])
        view._offsets = _read_only(offsets)
        view._made = {}
        view.user_ids, view.item_meta = user_ids, item_meta
        view.source, view.report = source, report
        view._stored = None
        view.validate()
        return view

    # ---- the EventLog's arrays ----------------------------------------------------------
    def _array(self, name: str) -> np.ndarray | None:
        """The log's event array ``name``, made from the shared one on first use."""
        if name not in self._made:
            shared = getattr(self._rows, name)
            self._made[name] = None if shared is None else _read_only(
                gather_rows(shared, self._rows.starts, self._rows.stops))
        return self._made[name]

    def _refuse(self, value) -> None:
        raise AttributeError("an EventLogView's arrays cannot be replaced (it reads the arrays "
                             "it shares); use dataclasses.replace(log, ...) for a log of new "
                             "arrays")

    offsets = property(lambda self: self._offsets, _refuse)
    items = property(lambda self: self._array("items"), _refuse)
    timestamps = property(lambda self: self._array("timestamps"), _refuse)
    feedback = property(lambda self: self._array("feedback"), _refuse)
    strength = property(lambda self: self._array("strength"), _refuse)

    def __getstate__(self) -> dict:
        """What identifies the view (its rows' bounds, O(users)) and the arrays it shares (an
        event store's by reference); not the arrays it made from them."""
        state = super().__getstate__()
        state["_made"] = {}
        return state

    def __repr__(self) -> str:
        return (f"EventLogView(users={self.num_users}, events={self.num_events}, "
                f"items={self.num_items}, source={self.source!r})")

    # ---- what reads the shared arrays ---------------------------------------------------
    def event_rows(self) -> EventRows:
        return self._rows

    @property
    def num_events(self) -> int:
        return int(self._offsets[-1])

    def user_events(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, feedback) of one user, in time order (slices of the shared arrays)."""
        s = slice(int(self._rows.starts[user]), int(self._rows.stops[user]))
        return self._rows.items[s], self._rows.feedback[s]

    def feedback_counts(self) -> dict[str, int]:
        counts = np.zeros(len(Feedback), dtype=np.int64)
        for _, _, index in row_chunks(self._rows.starts, self._rows.stops):
            counts += np.bincount(self._rows.feedback[index], minlength=len(Feedback))
        return {f.label: int(counts[f]) for f in FEEDBACK_TYPES}

    def item_counts(self, feedback=None) -> np.ndarray:
        """[V] events per item (only of the given feedback types, if any)."""
        codes = None if feedback is None else [int(f) for f in feedback]
        counts = np.zeros(self.num_items, dtype=np.int64)
        for _, _, index in row_chunks(self._rows.starts, self._rows.stops):
            items = self._rows.items[index]
            if codes is not None:
                items = items[np.isin(self._rows.feedback[index], codes)]
            counts += np.bincount(items, minlength=self.num_items)
        return counts

    def select_users(self, users: np.ndarray) -> "EventLogView":
        """A log of the given users (dense indices), in that order: a view of the same arrays."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.num_users):
            raise ValueError(f"select_users: user indices must be in [0, {self.num_users})")
        rows = self._rows
        return EventLogView.of(rows, rows.starts[users], rows.stops[users],
                               user_ids=self.user_ids[users], item_meta=self.item_meta,
                               source=self.source, report=self.report)

    def validate(self) -> None:
        """The rows against the shared arrays (O(users)); the events themselves were checked
        in the log they come from."""
        rows, u = self._rows, len(self._rows.starts)
        n = len(rows.items)
        for name in ("timestamps", "feedback", "strength"):
            arr = getattr(rows, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"EventLogView: {name} has {len(arr)} entries for {n} events")
        if len(rows.stops) != u or len(self.user_ids) != u:
            raise ValueError(f"EventLogView: {u} row starts, {len(rows.stops)} row stops and "
                             f"{len(self.user_ids)} user ids; expected one of each per user")
        bad = (rows.starts < 0) | (rows.stops < rows.starts) | (rows.stops > n)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"EventLogView: row {r} spans events [{rows.starts[r]}, "
                             f"{rows.stops[r]}); rows must lie within [0, {n}) with start <= stop")
