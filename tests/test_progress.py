"""negrec.progress: stage labels, bars named by their stage, heartbeats when bars are off."""

from __future__ import annotations

import logging

import negrec.progress as progress
from negrec.progress import Progress, label, stage


def test_stage_labels_nest_and_are_logged(caplog):
    caplog.set_level(logging.INFO, logger="negrec")
    with stage("train 2/15: input_ntr, seed 1"):
        with stage("epoch 3/20"):
            assert label("validation") == "train 2/15: input_ntr, seed 1 | epoch 3/20 | validation"
    assert label("x") == "x"
    assert [r.getMessage() for r in caplog.records] == [
        "train 2/15: input_ntr, seed 1", "train 2/15: input_ntr, seed 1 | epoch 3/20"]


def test_heartbeat_lines_when_bars_are_off(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="negrec")
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)  # every update is "30 s later"
    with stage("closed loop"):
        assert list(Progress(range(3), "step", show=False)) == [0, 1, 2]
    beats = [r.getMessage() for r in caplog.records][1:]
    assert beats == ["closed loop | step: 1/3", "closed loop | step: 2/3", "closed loop | step: 3/3"]


def test_no_heartbeat_when_a_bar_is_shown_or_asked_off(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="negrec")
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    list(Progress(range(3), "drawn", show=True))
    list(Progress(range(3), "other rank", show=False, heartbeat=False))
    assert caplog.records == []


def test_heartbeats_wait_for_the_interval(caplog):
    caplog.set_level(logging.INFO, logger="negrec")
    list(Progress(range(100), "fast", show=False))  # far less than 30 s
    assert caplog.records == []
