"""Fixtures of the data tests."""

from __future__ import annotations

import pytest

from negrec.data import EventLog


@pytest.fixture
def small_log() -> EventLog:
    """Three users: "b" has ties at t=5 (kept in input order); "c" has 2 events only."""
    users = ["a", "a", "a", "a", "b", "b", "b", "c", "c"]
    items = [10, 11, 12, 13, 10, 12, 11, 13, 10]
    ts = [4, 1, 2, 3, 5, 5, 1, 7, 8]
    fb = [1, 4, 1, 3, 1, 2, 4, 1, 1]
    return EventLog.from_events(users, items, ts, fb)
