"""The rows of a training epoch: the windows are computed for all users at once, and are those
of their definition (per user: n, then n - off, n - off - L, ... while > 1)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from negrec.data import EventLog, ItemMeta
from negrec.data.feedback import FEEDBACK_TYPES, Feedback
from negrec.sim import SimConfig, Simulator
from negrec.train.windows import training_windows


def _by_definition(log, input_feedback, max_len, rng=None):
    """The windows of the docstring, one user at a time."""
    kept = np.isin(log.feedback, [int(f) for f in input_feedback])
    n = np.array([kept[log.offsets[u]:log.offsets[u + 1]].sum()
                  for u in range(len(log.offsets) - 1)])
    eligible = np.flatnonzero(n >= 2)
    offsets = (rng.integers(1, max_len + 1, len(eligible)) if rng is not None
               else np.full(len(eligible), max_len))
    users, ends = [], []
    for u, off in zip(eligible, offsets):
        e = [n[u]] + list(range(n[u] - off, 1, -max_len))
        users += [u] * len(e)
        ends += e
    return np.array(users, dtype=np.int64), np.array(ends, dtype=np.int64)


@pytest.mark.parametrize("max_len", [1, 2, 7, 50, 200])
@pytest.mark.parametrize("seed", [None, 1])
@pytest.mark.parametrize("inputs", [FEEDBACK_TYPES, (Feedback.POSITIVE,)])
def test_windows_are_those_of_the_definition(max_len, seed, inputs):
    log, _ = Simulator(SimConfig(num_items=200, num_users=120, events_per_user=90),
                       seed=0).generate()
    rng = lambda: None if seed is None else np.random.default_rng(seed)  # noqa: E731
    users, ends = training_windows(log, inputs, max_len, rng())
    want_users, want_ends = _by_definition(log, inputs, max_len, rng())
    assert users.dtype == ends.dtype == np.int64
    assert np.array_equal(users, want_users) and np.array_equal(ends, want_ends)


def test_a_million_users_take_seconds_no_more():
    """A Python loop per user took 23 s per epoch for a million users here (every epoch
    recomputes the windows); now a few passes of numpy (0.3 s)."""
    users = 1_000_000
    log = EventLog(offsets=np.arange(users + 1, dtype=np.int64) * 3,
                   items=np.zeros(3 * users, np.int64), timestamps=np.zeros(3 * users, np.int64),
                   feedback=np.full(3 * users, int(Feedback.POSITIVE), np.int8),
                   user_ids=np.arange(users), item_meta=ItemMeta.anonymous(np.arange(1)))
    t0 = time.perf_counter()
    u, e = training_windows(log, (Feedback.POSITIVE,), 2, np.random.default_rng(0))
    took = time.perf_counter() - t0
    # 3 events: a window ending at 3, and one ending at 2 when the offset drawn is 1
    assert len(u) > users and np.all((e == 3) | (e == 2)) and (e == 3).sum() == users
    assert took < 5.0, took  # generous for a loaded 2-core machine
