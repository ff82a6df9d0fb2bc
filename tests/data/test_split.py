"""EventLog invariants, feedback codes shared with C++, and the splits."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.data import EventLog, Feedback, leave_one_out, time_split


def test_leave_one_out(small_log):
    log = small_log
    split = leave_one_out(log)
    assert split.skipped_users == 1  # "c" has 2 events
    assert split.test.users.tolist() == [0, 1] and split.valid.users.tolist() == [0, 1]
    raw = log.item_meta.raw_ids
    assert raw[split.test.items].tolist() == [10, 12]
    assert raw[split.valid.items].tolist() == [13, 10]
    assert split.test.feedback.tolist() == [Feedback.POSITIVE, Feedback.NEUTRAL]
    # histories: validation sees the training events, test also sees the validation event
    assert split.valid.history.lengths().tolist() == [2, 1]
    assert split.test.history.lengths().tolist() == [3, 2]
    assert raw[split.test.history.user_events(0)[0]].tolist() == [11, 12, 13]
    # training keeps all users (c entirely), minus the held-out events
    assert split.train.lengths().tolist() == [2, 1, 2]
    with pytest.raises(ValueError, match="min_events must be >= 3"):
        leave_one_out(log, min_events=2)


def test_time_split(small_log):
    log = small_log
    split = time_split(log, valid_fraction=0.2, test_fraction=0.2)
    t_valid, t_test = np.quantile(log.timestamps, [0.6, 0.8])
    assert np.all(split.train.timestamps < t_valid)
    assert np.all(split.test.timestamps >= t_test)
    for held in (split.valid, split.test):
        for k, u in enumerate(held.users):
            hist_ts = held.history.timestamps[held.history.user_slice(k)]
            assert np.all(hist_ts <= held.timestamps[k])
    with pytest.raises(ValueError, match="fractions must be in"):
        time_split(log, 0.6, 0.5)


def test_leave_last_out_holds_out_n_events_per_user_each_with_its_own_history():
    from negrec.data.split import leave_last_out

    # user 0: 7 events, user 1: 4 events (too short for n=2 with one training event)
    log = EventLog.from_events([0] * 7 + [1] * 4, list(range(7)) + [0, 1, 2, 3],
                               list(range(7)) + list(range(4)), [1, 4, 1, 3, 1, 4, 1] + [1] * 4)
    split = leave_last_out(log, 2)
    assert split.skipped_users == 1 and split.kind == "leave_last_2_out"
    np.testing.assert_array_equal(split.valid.users, [0, 0])
    np.testing.assert_array_equal(split.valid.items, [3, 4])
    np.testing.assert_array_equal(split.test.items, [5, 6])
    np.testing.assert_array_equal(split.test.feedback, [4, 1])
    # each entry's history is everything before it (held-out events as inputs, in order)
    h = split.test.history
    assert h.num_users == 2
    np.testing.assert_array_equal(h.items[h.user_slice(0)], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(h.items[h.user_slice(1)], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(split.valid.history.items[split.valid.history.user_slice(1)],
                                  [0, 1, 2, 3])
    # training keeps user 0's first 3 events and all of user 1's
    np.testing.assert_array_equal(split.train.items, [0, 1, 2, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="n and min_train_events must be >= 1"):
        leave_last_out(log, 0)


def test_leave_last_out_with_n_1_equals_leave_one_out():
    from negrec.data.split import leave_last_out, leave_one_out

    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 400)
    log = EventLog.from_events(users, rng.integers(0, 50, 400), rng.integers(0, 1000, 400),
                               rng.integers(1, 5, 400))
    a, b = leave_one_out(log), leave_last_out(log, 1, 1)
    np.testing.assert_array_equal(a.train.items, b.train.items)
    for x, y in ((a.valid, b.valid), (a.test, b.test)):
        np.testing.assert_array_equal(x.users, y.users)
        np.testing.assert_array_equal(x.items, y.items)
        np.testing.assert_array_equal(x.history.offsets, y.history.offsets)
        np.testing.assert_array_equal(x.history.items, y.history.items)
