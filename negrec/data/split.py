"""Train / validation / test splits, always made on the full log.

Objectives filter what a model sees (e.g. ``filter_history`` drops dislikes from the inputs)
*after* the split, so every objective is evaluated on the same held-out events.

A split copies no event: the training part and the histories of the held-out events are
:class:`~negrec.data.log_view.EventLogView` s, rows of the split log's own arrays (each user's
first events), so that splitting takes O(users) memory and the processes that split one opened
event store keep sharing its pages. (A time split whose training events are not a prefix of
each user's events, in a log whose times are not in order within a user, copies them.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from negrec.data.log import EventLog
from negrec.data.log_view import EventLogView
from negrec.data.rows import count_per_row
from negrec.errors import UserError

__all__ = ["SPLITS", "HeldOut", "Split", "leave_last_out", "leave_one_out", "make_split", "time_split"]


@dataclass
class HeldOut:
    """Held-out events with the history that precedes each.

    ``users`` [M] dense user ids (a user may appear more than once); ``items`` / ``feedback`` /
    ``timestamps`` [M] the held-out events; ``history`` is an :class:`EventLog` of M rows, row
    j holding entry j's user's events before the held-out one (a view of the split log's
    arrays: :class:`~negrec.data.log_view.EventLogView`).
    """

    users: np.ndarray
    items: np.ndarray
    feedback: np.ndarray
    timestamps: np.ndarray
    history: EventLog

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class Split:
    train: EventLog  # every user's training events (users keep their dense ids; a view)
    valid: HeldOut
    test: HeldOut
    kind: str
    skipped_users: int = 0  # users too short to hold out events from (kept in train only)


def _held_out(log: EventLog, users: np.ndarray, event_idx: np.ndarray) -> HeldOut:
    """Held-out entries: entry j is event ``event_idx[j]`` (an index into the log's events) of
    user ``users[j]``, with the user's events before it as its history (one history row per
    entry, so a user may hold several entries)."""
    users = np.asarray(users, dtype=np.int64)
    event_idx = np.asarray(event_idx, dtype=np.int64)
    rows = log.event_rows()
    # the same events in the arrays the log reads (its own, unless it is itself a view)
    at = rows.starts[users] + (event_idx - log.offsets[users])
    history = EventLogView.of(rows, rows.starts[users], at, user_ids=log.user_ids[users],
                              item_meta=log.item_meta, source=log.source, report=log.report)
    return HeldOut(users=users, items=rows.items[at], feedback=rows.feedback[at],
                   timestamps=rows.timestamps[at], history=history)


def _first_events(log: EventLog, keep: np.ndarray) -> EventLog:
    """The training part: the first ``keep[u]`` events of every user u (a view)."""
    rows = log.event_rows()
    return EventLogView.of(rows, rows.starts, rows.starts + keep, user_ids=log.user_ids,
                           item_meta=log.item_meta, source=log.source + " [train]",
                           report=log.report)


def leave_one_out(log: EventLog, min_events: int = 3) -> Split:
    """Per user (events in time order, ties in source order): the last event is the test
    event, the one before it the validation event, whatever their feedback; the rest is
    training. Users with fewer than ``min_events`` (>= 3) events stay in training only and
    are counted in ``skipped_users``.

    The validation history is the training events; the test history adds the validation
    event (a model is evaluated on what precedes the held-out event).
    """
    if min_events < 3:
        raise ValueError(f"leave_one_out: min_events must be >= 3; got {min_events}")
    lengths = log.lengths()
    users = np.flatnonzero(lengths >= min_events)
    last = log.offsets[users + 1] - 1
    keep = lengths.copy()
    keep[users] -= 2
    train = _first_events(log, keep)
    valid = _held_out(log, users, last - 1)
    test = _held_out(log, users, last)
    return Split(train=train, valid=valid, test=test, kind="leave_one_out",
                 skipped_users=int((lengths < min_events).sum()))


def leave_last_out(log: EventLog, n: int, min_train_events: int = 1) -> Split:
    """Per user (events in time order): the last ``n`` events are test events and the ``n``
    before them validation events, whatever their feedback; the rest is training. Each held-out
    event is evaluated with everything before it as its history (so later test events see the
    earlier ones as inputs, never as training targets). Users with fewer than
    ``2 n + min_train_events`` events stay in training only (``skipped_users``).
    ``leave_last_out(log, 1, 1)`` holds out the same events as :func:`leave_one_out`; a larger
    ``n`` gives ``n`` times more held-out events per user, for figures that need them (e.g. the
    dislike exposure of a log with few dislikes)."""
    if n < 1 or min_train_events < 1:
        raise UserError(f"leave_last_out: n and min_train_events must be >= 1; got n={n}, "
                        f"min_train_events={min_train_events}")
    lengths = log.lengths()
    users = np.flatnonzero(lengths >= 2 * n + min_train_events)
    end = log.offsets[users + 1]
    back = np.arange(2 * n, 0, -1)  # 2n .. 1 events before the end
    idx = end[:, None] - back[None, :]  # [U, 2n]: n validation events, then n test events
    keep = lengths.copy()
    keep[users] -= 2 * n
    train = _first_events(log, keep)
    rep = np.repeat(users, n)
    valid = _held_out(log, rep, idx[:, :n].ravel())
    test = _held_out(log, rep, idx[:, n:].ravel())
    return Split(train=train, valid=valid, test=test, kind=f"leave_last_{n}_out",
                 skipped_users=int((lengths < 2 * n + min_train_events).sum()))


def time_split(log: EventLog, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """A global time split: events after the (1 - test_fraction) time quantile are test
    events, those between the (1 - test - valid) and (1 - test) quantiles validation events.
    The held-out sets keep each user's *first* event in the window (one per user, with its full
    preceding history), so they are comparable with leave-one-out."""
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"time_split: fractions must be in (0, 1) and sum below 1; got "
                         f"valid={valid_fraction}, test={test_fraction}")
    t_valid, t_test = np.quantile(log.timestamps, [1 - valid_fraction - test_fraction,
                                                   1 - test_fraction])
    train = _before(log, t_valid)

    def window(lo, hi):
        users, idx = [], []
        for u in range(log.num_users):
            s = log.user_slice(u)
            ts = log.timestamps[s]
            inside = np.flatnonzero((ts >= lo) & (ts < hi))
            if len(inside) and inside[0] > 0:
                users.append(u)
                idx.append(s.start + inside[0])
        return _held_out(log, np.asarray(users, np.int64), np.asarray(idx, np.int64))

    return Split(train=train, valid=window(t_valid, t_test),
                 test=window(t_test, np.inf), kind="time_split")


def _before(log: EventLog, t: float) -> EventLog:
    """The events before time ``t``: a view of each user's first events when they are those
    (times in order within each user), else a copy of them."""
    rows = log.event_rows()
    early = lambda ts: ts < t  # noqa: E731
    keep = count_per_row(rows.timestamps, rows.starts, rows.stops, early)
    if np.array_equal(count_per_row(rows.timestamps, rows.starts, rows.starts + keep, early), keep):
        return _first_events(log, keep)
    return log.select_events(log.timestamps < t, source=log.source + " [train]")


#: The splits a training run can be configured with (``TrainConfig.split``, ``negrec train
#: --split``): name -> the function that makes it from the full log.
SPLITS = {"loo": leave_one_out, "time": time_split}


def make_split(log: EventLog, name: str) -> Split:
    """The split called ``name`` (a key of :data:`SPLITS`) of ``log``, with its defaults."""
    if name not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}; got {name!r}")
    return SPLITS[name](log)
