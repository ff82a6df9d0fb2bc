"""EventLog invariants: CSR layout, stable time order, validation, selection."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.data import EventLog, Feedback, ItemMeta


def test_from_events_sorts_stably_and_builds_csr(small_log):
    log = small_log
    assert log.offsets.tolist() == [0, 4, 7, 9]
    assert log.user_ids.tolist() == ["a", "b", "c"]
    raw = log.item_meta.raw_ids
    assert raw[log.user_events(0)[0]].tolist() == [11, 12, 13, 10]
    # b: t=1 first, then the two t=5 events in input order (10 then 12)
    assert raw[log.user_events(1)[0]].tolist() == [11, 10, 12]
    assert log.stats()["sequence_length"]["p100"] == 4


def test_validation_errors(small_log):
    with pytest.raises(ValueError, match="feedback codes must be 1..4"):
        EventLog.from_events([1], [1], [1], [0])
    with pytest.raises(ValueError, match="items missing from the item metadata"):
        EventLog.from_events([1], [5], [1], [1], item_meta=ItemMeta.anonymous(np.array([1, 2])))
    log = small_log
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        EventLog(offsets=np.array([0, 5, 4, 9]), items=log.items, timestamps=log.timestamps,
                 feedback=log.feedback, user_ids=log.user_ids, item_meta=log.item_meta)
    with pytest.raises(ValueError, match=r"item ids must be in \[0, 4\)"):
        EventLog(offsets=log.offsets, items=log.items + 3, timestamps=log.timestamps,
                 feedback=log.feedback, user_ids=log.user_ids, item_meta=log.item_meta)
    with pytest.raises(ValueError, match="ItemMeta.cluster must have shape"):
        ItemMeta(raw_ids=np.arange(3), cluster=np.zeros(2), cluster_names=["x"])


def test_select_events_and_users(small_log):
    log = small_log
    only_pos = log.select_events(log.feedback == Feedback.POSITIVE)
    assert only_pos.lengths().tolist() == [2, 1, 2]
    sub = log.select_users(np.array([2, 0]))
    assert sub.user_ids.tolist() == ["c", "a"] and sub.lengths().tolist() == [2, 4]
