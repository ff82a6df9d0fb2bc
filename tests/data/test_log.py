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


@pytest.mark.parametrize("with_fractions", [False, True])
def test_build_csr_in_chunks_drops_each_input_and_equals_one_sort(monkeypatch, with_fractions):
    """build_csr_from gives the arrays of one stable sort by (user, time, fraction) and the same
    report notes whatever its chunk sizes and the digits of its radix sort by user, and drops
    every array the source held."""
    from negrec.data import LoadReport, csr

    rng = np.random.default_rng(0)
    n, users = 500, 37
    source = dict(users=rng.integers(0, users, n).astype(np.int32),
                  items=rng.integers(0, 20, n).astype(np.int32),
                  timestamps=rng.integers(0, 40, n),  # many ties and duplicates, out of order
                  feedback=rng.integers(1, 5, n).astype(np.int8),
                  strength=rng.random(n),
                  fractions=rng.integers(0, 2, n) / 2 if with_fractions else None)
    keys = (source["timestamps"], source["users"]) if not with_fractions else \
        (source["fractions"], source["timestamps"], source["users"])
    order = np.lexsort(keys)
    ids = np.array([f"u{k}" for k in range(users)])
    whole_report = LoadReport()
    whole = csr.build_csr(source["users"], users, source["items"], source["timestamps"],
                          source["feedback"], strength=source["strength"],
                          fractions=source["fractions"], report=whole_report, user_ids=ids)
    monkeypatch.setattr(csr, "_GATHER_EVENTS", 7)
    monkeypatch.setattr(csr, "_CHUNK_EVENTS", 5)
    monkeypatch.setattr(csr, "_DIGIT_BITS", 2)  # 37 users: three passes of the radix sort
    handed = csr.SourceEvents(**{k: None if v is None else v.copy() for k, v in source.items()})
    chunked_report = LoadReport()
    chunked = csr.build_csr_from(handed, users, report=chunked_report, user_ids=ids)
    assert all(value is None for value in vars(handed).values())
    for out in (whole, chunked):
        np.testing.assert_array_equal(out.offsets, np.concatenate(
            [[0], np.cumsum(np.bincount(source["users"], minlength=users))]))
        np.testing.assert_array_equal(out.items, source["items"][order].astype(np.int64))
        np.testing.assert_array_equal(out.timestamps, source["timestamps"][order])
        np.testing.assert_array_equal(out.feedback, source["feedback"][order])
        np.testing.assert_array_equal(out.strength, source["strength"][order].astype(np.float32))
        assert (out.items.dtype, out.timestamps.dtype, out.feedback.dtype, out.strength.dtype) == \
            (np.int64, np.int64, np.int8, np.float32)
    assert chunked_report.notes == whole_report.notes and whole_report.notes
    assert chunked_report.examples == whole_report.examples
